"""The `mygpt` command line: prepare, train, generate, chat, info, eval, import, export.

Each command is thin: parse options -> build a validated config -> call one library
function -> render. The options that set config fields are listed once, in tables in
mygpt/options.py (field -> option names; shared ones, like sampling's, in one table), from
which `config_options` makes the Typer parameters: they default to None ("not given"), so
defaults live only in mygpt/config.py, and help texts are read from there too.

Errors: a `MyGPTError` is printed as one line on stderr and exits with its code (1, or
2 for invalid options); tracebacks only with `--debug` (or MYGPT_DEBUG=1). Ctrl-C exits
130. torch is imported only inside the commands that need it, so `mygpt --help` and
`mygpt info` start quickly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from mygpt import __version__, cli_sample, cli_train, distributed, runs, ui
from mygpt.cli_sample import CheckpointArg
from mygpt.config import DEFAULT_OUT_DIR, ChatConfig, SampleConfig, ServeConfig, TrainConfig
from mygpt.configure import build, field_help
from mygpt.errors import ConfigError, MyGPTError
from mygpt.options import (
    CHAT_OPTIONS,
    DEVICE,
    GENERATE_OPTIONS,
    PREPARE_OPTIONS,
    SERVE_OPTIONS,
    TRAIN_OPTIONS,
    config_options,
    hyphenate,
    labels,
)
from mygpt.prepare_config import PrepareConfig

SPELLING = "Options may also be written with underscores: --max_iters, --top_k."
SEEDS = "My Toy GPT's `uv run training` and `uv run generation` work too (see `uv run training --help`)."


def _reporting_errors(ctx: Any, invoke: Callable[[Any], Any]) -> Any:
    """Run a command, turning library errors into one clear message and an exit code."""
    try:
        return invoke(ctx)
    except MyGPTError as exc:
        if ctx.find_root().params.get("debug") or ctx.meta.get("debug") or os.environ.get("MYGPT_DEBUG"):
            raise
        ui.error(_rank_prefix() + str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the exit
        terminated = isinstance(exc, ui.Terminated)
        ui.info("terminated" if terminated else "interrupted")
        raise typer.Exit(143 if terminated else 130) from None


class _App(TyperGroup):
    """The `mygpt` group: every command's errors reported the same way."""

    def invoke(self, ctx: Any) -> Any:
        return _reporting_errors(ctx, super().invoke)


class Command(TyperCommand):
    """A command that takes underscore spellings of its options (`hyphenate`); run alone
    (My Toy GPT's `training`), it reports errors as the group does and takes --debug."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--debug" in args and not any(p.name == "debug" for p in self.params):
            ctx.meta["debug"] = True
            args = [a for a in args if a != "--debug"]
        names = {name for param in self.params for name in getattr(param, "opts", []) + getattr(param, "secondary_opts", [])}  # fmt: skip
        return super().parse_args(ctx, hyphenate(args, names))

    def invoke(self, ctx: Any) -> Any:
        return _reporting_errors(ctx, super().invoke)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Each option under its mygpt spelling (and short name), its aliases listed after its help."""
        options = [p for p in self.params if p.param_type_name == "option"]
        saved = [(p, p.opts, p.secondary_opts, p.help) for p in options]
        try:
            for p in options:
                aliases = [o for o in p.opts[1:] + p.secondary_opts[1:] if o.startswith("--")]
                p.opts = [o for o in p.opts if o == p.opts[0] or not o.startswith("--")]
                p.secondary_opts = p.secondary_opts[:1]
                if aliases:
                    p.help = f"{p.help or ''} Also: {', '.join(aliases)}.".strip()
            super().format_help(ctx, formatter)
        finally:
            for p, opts, secondary, help_text in saved:
                p.opts, p.secondary_opts, p.help = opts, secondary, help_text


def _rank_prefix() -> str:
    """'rank N: ' when several processes train together (under torchrun), else ''."""
    try:
        world = distributed.from_env()
    except ConfigError:  # a malformed environment is reported by the command itself
        return ""
    return f"rank {world.rank}: " if world.enabled else ""


app = typer.Typer(cls=_App, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train GPT language models from scratch on your own text, and sample from them.",
                  epilog=f"{SPELLING} {SEEDS}")  # fmt: skip


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mygpt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:  # fmt: skip
    """Train GPT language models from scratch on your own text, and sample from them."""


app.command("train", cls=Command, epilog=SPELLING)(
    config_options(TrainConfig, TRAIN_OPTIONS)(cli_train.command({}, "mygpt train", cli_train.train.__doc__ or ""))
)
app.command("generate", cls=Command, epilog=SPELLING)(
    config_options(SampleConfig, GENERATE_OPTIONS)(cli_sample.generate)
)
app.command("chat", cls=Command, epilog=SPELLING)(config_options(ChatConfig, CHAT_OPTIONS)(cli_sample.chat))


@app.command(cls=Command, epilog=SPELLING)
@config_options(PrepareConfig, PREPARE_OPTIONS)
def prepare(
    flags: dict[str, Any],
    corpus: Annotated[
        Optional[str], typer.Argument(help=field_help(PrepareConfig, "corpus"), show_default=False)
    ] = None,
    all_txt: Annotated[bool, typer.Option(
        "--all-txt-in-dir", help="Of each folder in --text, take the .txt files only (picoGPT's option).")] = False,
) -> None:  # fmt: skip
    """Tokenize a corpus into train/val token files. Prints the output folder."""
    from mygpt import corpus as corpora, prepare_view

    if all_txt:
        if not flags["text"] or not any(Path(t).is_dir() for t in flags["text"]):
            raise ConfigError("--all-txt-in-dir takes the .txt files of a folder: give one with --text-dir DIR.")
        flags["text"] = tuple(str(Path(t) / "*.txt") if Path(t).is_dir() else t for t in flags["text"])
    if flags["vocab_size"] is not None and flags["tokenizer"] is None:
        flags["tokenizer"] = "bpe"  # a vocabulary size alone asks for a trained one (picoGPT's prepare_tokenizer)
    cfg = build(PrepareConfig, flags={**flags, "corpus": corpus}, labels=labels(PREPARE_OPTIONS))
    progress, on_progress = prepare_view.prepare_progress()
    with progress, ui.terminate_as_interrupt():
        folder = corpora.prepare(cfg, on_progress)
    prepare_view.prepare_summary(str(folder), json.loads((folder / "meta.json").read_text(encoding="utf-8")))
    typer.echo(str(folder))


@app.command(cls=Command, epilog=SPELLING)
@config_options(ServeConfig, SERVE_OPTIONS)
def serve(flags: dict[str, Any], ctx: typer.Context, ckpt: CheckpointArg = None) -> None:
    """Serve a checkpoint over OpenAI's HTTP API (/v1), with a chat page at /. Ctrl-C stops it."""
    if flags["api_key"] is None:
        flags["api_key"] = os.environ.get("MYGPT_API_KEY") or None
    cfg = build(ServeConfig, flags=flags, labels=labels(SERVE_OPTIONS))
    path = runs.resolve(ckpt)
    from mygpt import server

    sock = server.listen(cfg.host, cfg.port)  # a port in use is reported before the model loads
    served = server.load(cfg, path)
    ui.info(f"serving {served.model_id} at {server.address(sock)}  (chat page: /, API: /v1; Ctrl-C stops)")
    if cfg.api_key is None and cfg.host not in ("127.0.0.1", "localhost", "::1"):
        ui.info(f"note: listening on {cfg.host} without --api-key: anyone who can reach it can use the model")
    debug = bool(ctx.find_root().params.get("debug") or os.environ.get("MYGPT_DEBUG"))
    with ui.terminate_as_interrupt():
        server.run(served, sock, debug)


@app.command(cls=Command, epilog=SPELLING)
def info(
    paths: Annotated[Optional[list[Path]], typer.Argument(show_default=False,
        help=f"Checkpoint files (default: every checkpoint under {DEFAULT_OUT_DIR}/, newest first).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (an object, or an array for several).")] = False,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", metavar="FILE.png", help="Also draw the loss curves to a PNG (needs matplotlib).")] = None,
) -> None:  # fmt: skip
    """Describe checkpoints from their headers alone (fast: no weights are loaded)."""
    summaries, skipped = runs.summaries(paths)
    for reason in skipped:
        ui.info(f"skipped: {reason}")
    curves = [runs.loss_curves(s) for s in summaries]
    if plot is not None:
        from mygpt.chart import save_plot

        written = save_plot({Path(s["path"]).name: c for s, c in zip(summaries, curves, strict=True)}, plot)
        ui.info(f"loss curves written to {written}")
    if as_json:
        typer.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    else:
        ui.show_info(summaries, curves)


@app.command("eval", cls=Command, epilog=SPELLING)
@config_options(SampleConfig, DEVICE)
def eval_(
    flags: dict[str, Any],
    ckpt: CheckpointArg = None,
    text: Annotated[Optional[Path], typer.Option("--text", metavar="FILE", help="Score this text file.")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", metavar="DIR", help="Score the val split of this prepared data.")] = None,
    stride: Annotated[Optional[int], typer.Option(
        "--stride", min=1, help="Tokens between window starts (default: half the context).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON: loss, perplexity, bits_per_byte, tokens.")] = False,
) -> None:  # fmt: skip
    """Loss, perplexity and bits per byte on held-out text (default: the checkpoint's own val split)."""
    from mygpt.scoring import score_checkpoint

    result, source = score_checkpoint(runs.resolve(ckpt), text, data, stride, flags["device"] or "auto")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        ui.info(f"scored {result.tokens:,} tokens ({result.bytes:,} bytes) of {source}")
        typer.echo(
            f"loss {result.loss:.4f}  perplexity {result.perplexity:.2f}  bits per byte {result.bits_per_byte:.4f}"
        )


import_app = typer.Typer(cls=_App, no_args_is_help=True, help="Turn weights from elsewhere into a mygpt checkpoint.")
export_app = typer.Typer(cls=_App, no_args_is_help=True, help="Write a mygpt checkpoint in another format.")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
OutOption = Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder that receives the checkpoint.")]


@import_app.command("hf")
def import_hf(
    folder: Annotated[Path, typer.Argument(
        help="A Hugging Face GPT-2 folder: config.json, model.safetensors, vocab.json, merges.txt.")],
    out: OutOption = Path(DEFAULT_OUT_DIR),
) -> None:  # fmt: skip
    """Convert a local Hugging Face GPT-2 folder (gpt2 ... gpt2-xl). Prints the checkpoint path."""
    from mygpt import convert

    config, weights, tokenizer = convert.read_hf(folder)
    typer.echo(str(convert.save_imported(config, weights, tokenizer, out, str(folder))))


@import_app.command("nanogpt")
def import_nanogpt(
    ckpt: Annotated[Path, typer.Argument(help="nanoGPT's ckpt.pt.")],
    corpus: Annotated[Optional[Path], typer.Option(
        "--corpus", metavar="TEXT", help="The text its prepare.py read: its characters (else GPT-2 BPE).")] = None,
    out: OutOption = Path(DEFAULT_OUT_DIR),
) -> None:  # fmt: skip
    """Convert a nanoGPT checkpoint (loaded as weights only; meta.pkl is never read)."""
    from mygpt import convert

    config, weights, tokenizer = convert.read_nanogpt(ckpt, corpus)
    typer.echo(str(convert.save_imported(config, weights, tokenizer, out, str(ckpt))))


@export_app.command("hf")
def export_hf(
    ckpt: Annotated[Path, typer.Argument(help="A mygpt checkpoint.")],
    folder: Annotated[Path, typer.Argument(help="Folder to write (GPT2LMHeadModel.from_pretrained reads it).")],
) -> None:
    """Write a checkpoint as a Hugging Face GPT-2 folder (GPT-2's architecture only)."""
    from mygpt import convert

    typer.echo(str(convert.write_hf(ckpt, folder)))


@export_app.command("gguf")
def export_gguf(
    ckpt: Annotated[str, typer.Argument(help="A mygpt checkpoint (a file, a run folder or a name).")],
    out: Annotated[Path, typer.Argument(help="The .gguf file to write (or a folder: NAME.gguf inside it).")],
    dtype: Annotated[str, typer.Option(
        "--dtype", metavar="f32|f16|q8_0", help="Weight type: f32 (exact), f16, or q8_0 (8-bit, 4x smaller).")] = "f32",
    approximate: Annotated[bool, typer.Option(
        "--approximate", help="Write what llama.cpp computes only approximately (exact GELU; the pre-tokenizers of "
        "mygpt's BPE, cl100k_base and o200k_base) instead of refusing; each approximation is listed.")] = False,
) -> None:  # fmt: skip
    """Write a checkpoint as one GGUF file for llama.cpp, Ollama and LM Studio. Prints its path."""
    from mygpt import gguf_export

    if dtype not in gguf_export.DTYPES:
        raise typer.BadParameter(f"{dtype!r} is not one of {', '.join(gguf_export.DTYPES)}.", param_hint="--dtype")
    result = gguf_export.write_gguf(runs.resolve(ckpt), out, dtype, approximate)
    for what in result.approximations:
        ui.info(f"approximated: {what}")
    ui.info(f"{result.arch} architecture, {result.pre} pre-tokenizer, {result.dtype}, "
            f"{result.tensors} tensors, {result.bytes / 1e6:.1f} MB")  # fmt: skip
    typer.echo(str(result.path))


OWNS_PROCESS = False  # True when running as a program (`mygpt`, `training`), not inside another program


def main(program: Callable[[], Any] = app) -> None:
    """Console-script entry point: run `program` (the `mygpt` app, or `training`...) and exit."""
    global OWNS_PROCESS
    OWNS_PROCESS = True
    try:
        program()
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if "torch" in sys.modules:
        # Tearing torch down at interpreter exit is slow and raises the peak memory.
        # Every file is written and closed by now: flush and leave without it.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
