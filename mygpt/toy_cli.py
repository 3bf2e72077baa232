"""My Toy GPT's commands, `uv run training` and `uv run generation`, as that project's
users type them: `mygpt train` and `mygpt generate` under its names and defaults.

- `training` is `mygpt train` starting from the `toygpt` preset (that project's defaults:
  one block, 16 heads, 5000 steps, ...), and its `--epochs` counts optimizer steps, as
  My Toy GPT's did (in `mygpt train`, --epochs counts passes over the data).
- `generation [NUM_TOKENS] --load NAME` is `mygpt generate` with the number of tokens as
  an argument (default 500) and the checkpoint named by --load (default: the newest).
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from mygpt import cli_sample, cli_train
from mygpt.cli import SPELLING, Command
from mygpt.config import SampleConfig, TrainConfig
from mygpt.configure import PRESETS
from mygpt.options import GENERATE_OPTIONS, TOY_TRAIN_OPTIONS, config_options

_app = {"add_completion": False, "pretty_exceptions_enable": False}
training_app = typer.Typer(**_app)
generation_app = typer.Typer(**_app)

training_app.command(cls=Command, epilog=SPELLING)(
    config_options(TrainConfig, TOY_TRAIN_OPTIONS, preset=PRESETS["toygpt"])(
        cli_train.command(
            PRESETS["toygpt"],
            "uv run training",
            "Train a model as My Toy GPT's `training` did: its defaults (see --preset toygpt) and --epochs "
            "counting steps; everything `mygpt train` takes works here too. Prints the checkpoint path.",
        )
    )
)


@generation_app.command(cls=Command, epilog=SPELLING)
@config_options(SampleConfig, GENERATE_OPTIONS)
def generation(
    flags: dict[str, Any],
    num_tokens: Annotated[Optional[int], typer.Argument(
        help="Tokens to generate (default: 500).", show_default=False, min=0)] = None,
    load: cli_sample.CheckpointOption = None,
    prompt_file: cli_sample.PromptFileOption = None,
    no_stream: cli_sample.NoStreamOption = False,
    interactive: cli_sample.InteractiveOption = False,
    mode: cli_sample.ModeOption = None,
) -> None:  # fmt: skip
    """Sample text as My Toy GPT's `generation` did: `generation 1000 --load NAME --seed 42`."""
    if num_tokens is not None:
        if flags["max_new_tokens"] is not None:
            raise typer.BadParameter("give the number of tokens once: as the argument or as --max-new-tokens.")
        flags["max_new_tokens"] = num_tokens
    cli_sample.generate(flags, None, load, prompt_file, no_stream, interactive, mode)
