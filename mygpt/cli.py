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
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from mygpt import __version__, distributed, runs, ui
from mygpt.config import DEFAULT_OUT_DIR, ChatConfig, SampleConfig, ServeConfig, TrainConfig
from mygpt.configure import PRESETS, build, field_help
from mygpt.errors import ConfigError, MyGPTError
from mygpt.events import Interrupted, StopFlag
from mygpt.prepare_config import PrepareConfig
from mygpt.options import (
    CHAT_OPTIONS,
    DEVICE,
    GENERATE_OPTIONS,
    PREPARE_OPTIONS,
    SERVE_OPTIONS,
    TRAIN_OPTIONS,
    config_options,  # fmt: skip
    labels,
)


class _App(TyperGroup):
    """Turns library errors into one clear message and an exit code, for every command."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MyGPTError as exc:
            if ctx.params.get("debug") or os.environ.get("MYGPT_DEBUG"):
                raise
            ui.error(_rank_prefix() + str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the exit
            terminated = isinstance(exc, ui.Terminated)
            ui.info("terminated" if terminated else "interrupted")
            raise typer.Exit(143 if terminated else 130) from None


def _rank_prefix() -> str:
    """'rank N: ' when several processes train together (under torchrun), else ''."""
    try:
        world = distributed.from_env()
    except ConfigError:  # a malformed environment is reported by the command itself
        return ""
    return f"rank {world.rank}: " if world.enabled else ""


app = typer.Typer(cls=_App, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train GPT language models from scratch on your own text, and sample from them.")  # fmt: skip


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


CheckpointArg = Annotated[Optional[Path], typer.Argument(
    help=f"Checkpoint file (default: the newest under {DEFAULT_OUT_DIR}/).", show_default=False)]  # fmt: skip


@app.command()
@config_options(PrepareConfig, PREPARE_OPTIONS)
def prepare(
    flags: dict[str, Any],
    corpus: Annotated[
        Optional[str], typer.Argument(help=field_help(PrepareConfig, "corpus"), show_default=False)
    ] = None,
) -> None:
    """Tokenize a corpus into train/val token files. Prints the output folder."""
    from mygpt import corpus as corpora, prepare_view

    cfg = build(PrepareConfig, flags={**flags, "corpus": corpus}, labels=labels(PREPARE_OPTIONS))
    progress, on_progress = prepare_view.prepare_progress()
    with progress, ui.terminate_as_interrupt():
        folder = corpora.prepare(cfg, on_progress)
    prepare_view.prepare_summary(str(folder), json.loads((folder / "meta.json").read_text(encoding="utf-8")))
    typer.echo(str(folder))


@app.command()
@config_options(TrainConfig, TRAIN_OPTIONS)
def train(
    flags: dict[str, Any],
    preset: Annotated[Optional[str], typer.Option("--preset", help=f"Start from a preset: {', '.join(PRESETS)}.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", metavar="FILE", help="A .toml, .json or .yaml config file.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Set any config field: --set model.n_layer=6 (repeatable).")] = None,
    resume: Annotated[Optional[str], typer.Option(
        "--resume", metavar="CKPT|latest", help="Continue a run exactly where it was saved (same files).")] = None,
    init_from: Annotated[Optional[Path], typer.Option(
        "--init-from", metavar="CKPT", help="Start a new run from a checkpoint's weights (fresh optimizer).")] = None,
    strict: Annotated[bool, typer.Option("--strict/--no-strict",
        help="With --init-from: every tensor must fit (--no-strict initialises the rest fresh).")] = True,
) -> None:  # fmt: skip
    """Train a model; prepares the default corpus first if needed. Prints the checkpoint path."""
    if resume and init_from:
        raise ConfigError("--resume continues a run and --init-from starts a new one: give one of them.")
    from mygpt import checkpoint, data, device as devices, training

    out_dir = flags["out_dir"] or DEFAULT_OUT_DIR
    resume_path = runs.resolve(None if resume == "latest" else resume, out_dir) if resume else None
    base = training.resume_base(resume_path) if resume_path else None
    if init_from is not None:  # the architecture comes from the checkpoint, the vocabulary from the data
        base = {"model": checkpoint.read_header(init_from).meta.model.model_dump(mode="json", exclude={"vocab_size"})}
    cfg = build(
        TrainConfig, base=base, preset=preset, file=config, flags=flags, sets=set_ or (), labels=labels(TRAIN_OPTIONS)
    )
    devices.resolve(cfg.device)  # an unavailable device is reported before any download
    world = distributed.from_env()  # under torchrun: only rank 0 downloads, prints and writes
    if cfg.data is None and world.is_main:
        from mygpt import prepare_view

        progress, on_progress = prepare_view.prepare_progress()
        with progress:
            cfg = cfg.model_copy(update={"data": str(data.ensure_default(on_progress=on_progress))})
    stop = StopFlag()
    with ui.stop_on_signals(stop, exiting=_OWNS_PROCESS):
        events = training.train(cfg, resume=resume_path, init_from=init_from, strict=strict, stop=stop)
        last = ui.render_training(events, show=world.is_main)
    if isinstance(last, Interrupted):
        if last.path and world.is_main:
            launch = f"torchrun --nproc-per-node {world.size} -m mygpt train" if world.enabled else "mygpt train"
            ui.info(f"resume with: {launch} --resume {last.path}")
            typer.echo(str(last.path))
        raise typer.Exit(143 if last.signum == signal.SIGTERM else 130)
    if world.is_main:
        typer.echo(str(last.path))


@app.command()
@config_options(SampleConfig, GENERATE_OPTIONS)
def generate(
    flags: dict[str, Any],
    ckpt: CheckpointArg = None,
    prompt_file: Annotated[Optional[Path], typer.Option(
        "--prompt-file", metavar="FILE", help="Read the prompt from a file.")] = None,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Print the text once at the end.")] = False,
) -> None:  # fmt: skip
    """Sample text from a checkpoint. stdout carries the prompt and the generated text only."""
    if flags["prompt"] is not None and prompt_file is not None:
        raise ConfigError("give the prompt with --prompt or --prompt-file, not both.")
    if prompt_file is not None and not prompt_file.is_file():
        raise MyGPTError(f"no such prompt file: {prompt_file}")
    if flags["prompt"] == "-":
        flags["prompt"] = sys.stdin.read()
    elif prompt_file is not None:
        from mygpt.data import read_text

        flags["prompt"] = read_text(prompt_file)
    cfg = build(SampleConfig, flags=flags, labels=labels(GENERATE_OPTIONS))
    path = runs.resolve(ckpt)
    from mygpt import chat, checkpoint, device as devices, sampling as gen

    dev = devices.resolve(cfg.device)
    loaded = checkpoint.load(path, device=str(dev))
    start = gen.prompt_ids(loaded.tokenizer, cfg.prompt)  # checks the prompt before anything is printed
    if unseen := gen.prompt_tail(start, loaded.model.config.block_size):
        ui.info(f"note: the prompt is {len(start)} tokens, longer than the context; the model sees its last "
                f"{len(start) - unseen}")  # fmt: skip
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
    if cfg.num_samples == 1 and not no_stream:  # streamed as it comes
        ui.write(cfg.prompt)
        for piece in chat.stream_text(steps, gen.TextStream(loaded.tokenizer, cfg.stop)):
            ui.write(piece)
        ui.write("\n")
        return
    for n, text in enumerate(chat.sample_texts(steps, loaded.tokenizer, cfg)):
        if cfg.num_samples > 1:
            ui.info(f"--- sample {n + 1}/{cfg.num_samples} ---")
        ui.write(cfg.prompt + text + "\n")


@app.command()
@config_options(ChatConfig, CHAT_OPTIONS)
def chat(flags: dict[str, Any], ckpt: CheckpointArg = None) -> None:
    """Talk with a model, a turn at a time. /help lists the commands; /quit or Ctrl-D leaves.

    Works with piped input too: printf 'hello\\n/quit\\n' | mygpt chat
    """
    cfg = build(ChatConfig, flags=flags, labels=labels(CHAT_OPTIONS))
    path = runs.resolve(ckpt)
    from mygpt import checkpoint, device as devices
    from mygpt.chat import ChatIO, Conversation, repl

    dev = devices.resolve(cfg.device)
    loaded = checkpoint.load(path, device=str(dev))
    conversation = Conversation(loaded.tokenizer, loaded.model.config.block_size, cfg)
    if sys.stdin.isatty():
        ui.info(f"chatting with {path}. /help for commands; /quit or Ctrl-D to leave.")
    io = ChatIO(read_line=ui.read_line, write=ui.write, notify=ui.info, error=ui.error)
    raise typer.Exit(repl(conversation, loaded.model, dev, io))


@app.command()
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


@app.command()
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


@app.command("eval")
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


_OWNS_PROCESS = False  # True when running as the `mygpt` program, not inside another program


def main() -> None:
    """Console-script entry point."""
    global _OWNS_PROCESS
    _OWNS_PROCESS = True
    try:
        app()
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
