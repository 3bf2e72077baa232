"""The commands that sample from a checkpoint: `mygpt generate` and `mygpt chat`
(and My Toy GPT's `generation`, in mygpt/toy_cli.py).

The checkpoint is the positional CKPT, or one of the options the seed projects used for
it (--model, --model-path, --ckpt, --load); names are looked up as `runs.resolve` says.
picoGPT's --tokenizer-path and --vocab-path are accepted: mygpt's checkpoints carry
their tokenizer, so they are not needed, and the user is told so.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mygpt import runs, ui
from mygpt.config import DEFAULT_OUT_DIR, ChatConfig, SampleConfig
from mygpt.configure import build
from mygpt.errors import ConfigError
from mygpt.files import require_regular
from mygpt.options import CHAT_OPTIONS, GENERATE_OPTIONS, labels

CheckpointArg = Annotated[
    Optional[Path],
    typer.Argument(help=f"Checkpoint file (default: the newest under {DEFAULT_OUT_DIR}/).", show_default=False),
]
CheckpointOption = Annotated[Optional[str], typer.Option(
    "--model", "--model-path", "--ckpt", "--load", metavar="CKPT",
    help="The checkpoint, as an option: a path, a folder (its newest), or a name in checkpoints/.")]  # fmt: skip
ModeOption = Annotated[Optional[str], typer.Option(
    "--mode", metavar="char|token", help="Check that the model is char-level or token-level (picoGPT's --mode).")]  # fmt: skip
TokenizerPathOption = Annotated[Optional[str], typer.Option(
    "--tokenizer-path", "--vocab-path", metavar="PATH", hidden=True,
    help="Not needed: a mygpt checkpoint carries its tokenizer (accepted for picoGPT's commands).")]  # fmt: skip
PromptFileOption = Annotated[
    Optional[Path], typer.Option("--prompt-file", metavar="FILE", help="Read the prompt from a file.")
]
NoStreamOption = Annotated[bool, typer.Option("--no-stream", help="Print the text once at the end.")]
InteractiveOption = Annotated[
    bool, typer.Option("--interactive", "-i", help="Talk with the model instead, as `mygpt chat` does.")
]


def checkpoint_path(ckpt: Optional[Path], named: Optional[str], tokenizer_path: Optional[str] = None) -> Path:
    """The checkpoint given as an argument or as an option (not both), else the newest."""
    if ckpt is not None and named is not None:
        raise ConfigError(f"two checkpoints given ({ckpt} and {named}): give one.")
    if tokenizer_path is not None:
        ui.info("note: no tokenizer or vocabulary file is needed: a mygpt checkpoint carries its tokenizer")
    return runs.resolve(ckpt if ckpt is not None else named)


def generate(
    flags: dict[str, Any],
    ckpt: CheckpointArg = None,
    model: CheckpointOption = None,
    prompt_file: PromptFileOption = None,
    no_stream: NoStreamOption = False,
    interactive: InteractiveOption = False,
    mode: ModeOption = None,
    tokenizer_path: TokenizerPathOption = None,
) -> None:
    """Sample text from a checkpoint. stdout carries the prompt and the generated text only."""
    _check_mode(mode)
    path = checkpoint_path(ckpt, model, tokenizer_path)
    if interactive:
        unused = [labels(GENERATE_OPTIONS)[key] for key, value in flags.items() if value is not None and key not in CHAT_OPTIONS]  # fmt: skip
        if unused or prompt_file is not None or no_stream:
            raise ConfigError(
                f"--interactive talks with the model: {', '.join(unused) or 'that option'} does not apply."
            )
        return chat({key: value for key, value in flags.items() if key in CHAT_OPTIONS}, path, mode=mode)
    if flags["prompt"] is not None and prompt_file is not None:
        raise ConfigError("give the prompt with --prompt or --prompt-file, not both.")
    if prompt_file is not None:
        require_regular(prompt_file, "prompt file")  # a FIFO or /dev/zero would never give a prompt
    if flags["prompt"] == "-":
        flags["prompt"] = sys.stdin.read()
    elif prompt_file is not None:
        from mygpt.data import read_text

        flags["prompt"] = read_text(prompt_file)
    cfg = build(SampleConfig, flags=flags, labels=labels(GENERATE_OPTIONS))
    from mygpt import checkpoint, device as devices

    dev = devices.resolve(cfg.device)
    loaded = checkpoint.load(path, device=str(dev))
    _check_mode(mode, loaded.tokenizer, path)
    sample(loaded, cfg, path, dev, stream=not no_stream)


def sample(loaded: Any, cfg: SampleConfig, path: Path, dev: Any, stream: bool = True) -> None:
    """Print what `cfg` asks of a loaded checkpoint: samples streamed as they come, several
    samples one after another, or the beam search's one text."""
    from mygpt import chat as chats, sampling as gen
    from mygpt.memory import require_sampling

    require_sampling(loaded.model.config, max(cfg.num_samples, cfg.beams), dev)  # before anything is printed
    start = gen.prompt_ids(loaded.tokenizer, cfg.prompt)  # checks the prompt before anything is printed
    if unknown := getattr(loaded.tokenizer, "unknown", lambda text: [])(cfg.prompt):  # a word tokenizer's
        ui.info(f"note: not in the model's vocabulary, so each is one <unk> token: {', '.join(unknown[:10])}")
    if unseen := gen.prompt_tail(start, loaded.model.config.block_size):
        ui.info(
            f"note: the prompt is {len(start)} tokens, longer than the context; the model sees its last "
            f"{len(start) - unseen}"
        )
    if cfg.beams > 1:  # one deterministic text, known only at the end
        from mygpt.beam import beam_search

        ui.info(f"beam search with {cfg.beams} beams over {path}")
        text = gen.TextStream(loaded.tokenizer, cfg.stop)
        ids = beam_search(loaded.model, start, cfg.beams, cfg.max_new_tokens, dev)
        ui.write(cfg.prompt + text.push(ids) + text.finish() + "\n")
        return
    seed_used = gen.resolve_seed(cfg.seed)
    ui.info(f"sampling from {path} with seed {seed_used}")
    steps = gen.generate(loaded.model, start, cfg, seed_used, dev, use_cache=cfg.kv_cache)
    if cfg.num_samples == 1 and stream:  # streamed as it comes
        ui.write(cfg.prompt)
        for piece in chats.stream_text(steps, gen.TextStream(loaded.tokenizer, cfg.stop)):
            ui.write(piece)
        ui.write("\n")
        return
    for n, text in enumerate(chats.sample_texts(steps, loaded.tokenizer, cfg)):
        if cfg.num_samples > 1:
            ui.info(f"--- sample {n + 1}/{cfg.num_samples} ---")
        ui.write(cfg.prompt + text + "\n")


def chat(
    flags: dict[str, Any],
    ckpt: CheckpointArg = None,
    model: CheckpointOption = None,
    mode: ModeOption = None,
    tokenizer_path: TokenizerPathOption = None,
) -> None:
    """Talk with a model, a turn at a time. /help lists the commands; /quit or Ctrl-D leaves.

    Works with piped input too: printf 'hello\\n/quit\\n' | mygpt chat
    """
    cfg = build(ChatConfig, flags=flags, labels=labels(CHAT_OPTIONS))
    _check_mode(mode)
    path = checkpoint_path(ckpt, model, tokenizer_path)
    from mygpt import checkpoint, device as devices
    from mygpt.chat import ChatIO, Conversation, repl

    dev = devices.resolve(cfg.device)
    loaded = checkpoint.load(path, device=str(dev))
    _check_mode(mode, loaded.tokenizer, path)
    conversation = Conversation(loaded.tokenizer, loaded.model.config.block_size, cfg)
    if sys.stdin.isatty():
        ui.info(f"chatting with {path}. /help for commands; /quit or Ctrl-D to leave.")
    io = ChatIO(read_line=ui.read_line, write=ui.write, notify=ui.info, error=ui.error)
    raise typer.Exit(repl(conversation, loaded.model, dev, io))


def _check_mode(mode: Optional[str], tokenizer: Any = None, path: Optional[Path] = None) -> None:
    """--mode: one of its values (checked first), then against the loaded model's tokenizer."""
    from mygpt.plan import MODES, check_mode

    if mode is not None and mode not in MODES:
        raise ConfigError(f"--mode {mode!r} is not one of: {', '.join(MODES)}.")
    if tokenizer is not None:
        check_mode(mode, tokenizer, f"the model in {path}")
