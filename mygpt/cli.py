"""The `mygpt` command line: prepare, train, generate, chat, info.

Each command is thin: parse options -> build a validated config -> call one library
function -> render. Options default to None ("not given"), so defaults live only in
mygpt/config.py, and help texts are read from there too.

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
import threading
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from typer.core import TyperGroup

from mygpt import __version__, checkpoint, distributed, runs, ui
from mygpt.config import PRESETS, ChatConfig, PrepareConfig, SampleConfig, TrainConfig, build, field_help
from mygpt.errors import ConfigError, MyGPTError


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
        except KeyboardInterrupt:
            ui.info("interrupted")
            raise typer.Exit(130) from None


def _rank_prefix() -> str:
    """'rank N: ' when several processes train together (under torchrun), else ''."""
    try:
        world = distributed.from_env()
    except ConfigError:  # a malformed environment is reported by the command itself
        return ""
    return f"rank {world.rank}: " if world.enabled else ""


app = typer.Typer(
    cls=_App,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train GPT language models from scratch on your own text, and sample from them.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mygpt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Train GPT language models from scratch on your own text, and sample from them."""


def _opt(cls: type, field: str, *names: str, **kwargs: Any) -> Any:
    """A typer.Option whose help text (and shown default) comes from the config field."""
    return typer.Option(*names, help=field_help(cls, field), show_default=False, **kwargs)


# Options that several commands share, defined once.
DeviceOption = Annotated[Optional[str], _opt(TrainConfig, "device", "--device", "--backend")]
CheckpointArg = Annotated[
    Optional[Path], typer.Argument(help="Checkpoint file (default: the newest under checkpoints/).", show_default=False)
]


@app.command()
def prepare(
    corpus: Annotated[Optional[str], typer.Argument(help=field_help(PrepareConfig, "corpus"), show_default=False)] = None,
    text: Annotated[Optional[list[str]], _opt(PrepareConfig, "text", "--text", metavar="FILE|DIR")] = None,
    tokenizer: Annotated[Optional[str], _opt(PrepareConfig, "tokenizer", "--tokenizer")] = None,
    vocab_size: Annotated[Optional[int], _opt(PrepareConfig, "vocab_size", "--vocab-size")] = None,
    tokenizer_file: Annotated[
        Optional[str], _opt(PrepareConfig, "tokenizer_file", "--tokenizer-file", metavar="PATH")
    ] = None,
    val_fraction: Annotated[Optional[float], _opt(PrepareConfig, "val_fraction", "--val-fraction")] = None,
    split: Annotated[Optional[str], _opt(PrepareConfig, "split", "--split")] = None,
    seed: Annotated[Optional[int], _opt(PrepareConfig, "seed", "--seed")] = None,
    out: Annotated[Optional[str], _opt(PrepareConfig, "out", "--out", metavar="DIR")] = None,
) -> None:
    """Tokenize a corpus into train/val token files. Prints the output folder."""
    from mygpt import data

    flags = {
        "corpus": corpus, "text": tuple(text) if text else None, "tokenizer": tokenizer, "vocab_size": vocab_size,
        "tokenizer_file": tokenizer_file, "val_fraction": val_fraction, "split": split, "seed": seed, "out": out,
    }  # fmt: skip
    cfg = build(PrepareConfig, flags=flags)
    progress, on_progress = ui.download_progress()
    with progress:
        folder = data.prepare(cfg, on_progress)
    ui.prepare_summary(str(folder), json.loads((folder / "meta.json").read_text(encoding="utf-8")))
    typer.echo(str(folder))


@app.command()
def train(
    preset: Annotated[Optional[str], typer.Option("--preset", help=f"Start from a preset: {', '.join(PRESETS)}.")] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", metavar="FILE", help="A .toml or .json config file.")
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", metavar="KEY=VALUE", help="Set any config field: --set model.n_layer=6 (repeatable)."),
    ] = None,
    data: Annotated[Optional[str], _opt(TrainConfig, "data", "--data", metavar="DIR")] = None,
    out: Annotated[Optional[str], _opt(TrainConfig, "out_dir", "--out", metavar="DIR")] = None,
    n_layer: Annotated[Optional[int], _opt(TrainConfig, "model.n_layer", "--n-layer", "--blocks")] = None,
    n_head: Annotated[Optional[int], _opt(TrainConfig, "model.n_head", "--n-head", "--heads")] = None,
    n_embd: Annotated[Optional[int], _opt(TrainConfig, "model.n_embd", "--n-embd", "--emb")] = None,
    block_size: Annotated[Optional[int], _opt(TrainConfig, "model.block_size", "--block-size", "--ctx")] = None,
    dropout: Annotated[Optional[float], _opt(TrainConfig, "model.dropout", "--dropout")] = None,
    pos: Annotated[Optional[str], _opt(TrainConfig, "model.pos", "--pos")] = None,
    batch_size: Annotated[Optional[int], _opt(TrainConfig, "batch_size", "--batch-size", "-B")] = None,
    lr: Annotated[Optional[float], _opt(TrainConfig, "lr", "--lr")] = None,
    min_lr: Annotated[Optional[float], _opt(TrainConfig, "min_lr", "--min-lr")] = None,
    warmup_iters: Annotated[Optional[int], _opt(TrainConfig, "warmup_iters", "--warmup-iters")] = None,
    max_iters: Annotated[Optional[int], _opt(TrainConfig, "max_iters", "--max-iters")] = None,
    weight_decay: Annotated[Optional[float], _opt(TrainConfig, "weight_decay", "--weight-decay")] = None,
    grad_clip: Annotated[Optional[float], _opt(TrainConfig, "grad_clip", "--grad-clip")] = None,
    grad_accum: Annotated[Optional[int], _opt(TrainConfig, "grad_accum", "--grad-accum")] = None,
    eval_interval: Annotated[Optional[int], _opt(TrainConfig, "eval_interval", "--eval-interval")] = None,
    eval_iters: Annotated[Optional[int], _opt(TrainConfig, "eval_iters", "--eval-iters")] = None,
    seed: Annotated[Optional[int], _opt(TrainConfig, "seed", "--seed")] = None,
    device: DeviceOption = None,
    dtype: Annotated[Optional[str], _opt(TrainConfig, "dtype", "--dtype")] = None,
    compile_: Annotated[Optional[str], _opt(TrainConfig, "compile", "--compile")] = None,
    lr_schedule: Annotated[Optional[str], _opt(TrainConfig, "lr_schedule", "--lr-schedule")] = None,
    label_smoothing: Annotated[Optional[float], _opt(TrainConfig, "label_smoothing", "--label-smoothing")] = None,
    patience: Annotated[Optional[int], _opt(TrainConfig, "patience", "--patience")] = None,
    target_loss: Annotated[Optional[float], _opt(TrainConfig, "target_loss", "--target-loss")] = None,
    max_time: Annotated[Optional[str], _opt(TrainConfig, "max_time", "--max-time", metavar="DURATION")] = None,
    no_tie_weights: Annotated[
        bool, typer.Option("--no-tie-weights", help="Give the LM head its own matrix instead of the token embedding's.")
    ] = False,
    resume: Annotated[
        Optional[str],
        typer.Option("--resume", metavar="CKPT|latest", help="Continue a run exactly where it was saved (same files)."),
    ] = None,
    init_from: Annotated[
        Optional[Path],
        typer.Option("--init-from", metavar="CKPT", help="Start a new run from a checkpoint's weights (fresh optimizer)."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict/--no-strict", help="With --init-from: every tensor must fit (--no-strict initialises the rest fresh).")
    ] = True,
) -> None:
    """Train a model; prepares the default corpus first if needed. Prints the checkpoint path."""
    flags = {
        "data": data, "out_dir": out, "model.n_layer": n_layer, "model.n_head": n_head, "model.n_embd": n_embd,
        "model.block_size": block_size, "model.dropout": dropout, "model.pos": pos, "model.tie_weights": False if no_tie_weights else None,
        "batch_size": batch_size, "lr": lr, "min_lr": min_lr, "warmup_iters": warmup_iters, "max_iters": max_iters,
        "weight_decay": weight_decay, "grad_clip": grad_clip, "grad_accum": grad_accum,
        "eval_interval": eval_interval, "eval_iters": eval_iters, "seed": seed, "device": device, "dtype": dtype,
        "compile": compile_, "lr_schedule": lr_schedule, "label_smoothing": label_smoothing, "patience": patience,
        "target_loss": target_loss, "max_time": max_time,
    }  # fmt: skip
    if resume and init_from:
        raise ConfigError("--resume continues a run and --init-from starts a new one: give one of them.")
    from mygpt import data as datamod, device as devices, training

    resume_path = runs.resolve(None if resume == "latest" else resume, out or "checkpoints") if resume else None
    base = None
    if resume_path is not None:
        base = training.resume_base(resume_path)
    elif init_from is not None:
        base = {"model": checkpoint.read_header(init_from).meta.model.model_dump(mode="json", exclude={"vocab_size"})}
    cfg = build(TrainConfig, base=base, preset=preset, file=config, flags=flags, sets=set_ or ())
    devices.resolve(cfg.device)  # an unavailable device is reported before any download
    world = distributed.from_env()  # under torchrun: only rank 0 downloads, prints and writes
    if cfg.data is None and world.is_main:
        progress, on_progress = ui.download_progress()
        with progress:
            cfg = cfg.model_copy(update={"data": str(datamod.ensure_default(on_progress=on_progress))})

    stop = training.StopFlag()
    with _stop_on_signals(stop):
        events = training.train(cfg, resume=resume_path, init_from=init_from, strict=strict, stop=stop)
        last = ui.render_training(events) if world.is_main else _last(events)
    if isinstance(last, training.Interrupted):
        if last.path and world.is_main:
            ui.info(f"resume with: {_resume_command(world)} --resume {last.path}")
            typer.echo(str(last.path))
        raise typer.Exit(143 if last.signum == signal.SIGTERM else 130)
    if world.is_main:
        typer.echo(str(last.path))


def _last(events: Iterator[Any]) -> Any:
    """Run the events through without showing them (ranks other than 0); the last one."""
    last = None
    for last in events:
        pass
    return last


def _resume_command(world: Any) -> str:
    return f"torchrun --nproc-per-node {world.size} -m mygpt train" if world.enabled else "mygpt train"


@contextlib.contextmanager
def _stop_on_signals(stop: Any) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask training to finish its step and save; a second one just waits for the save."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers need the main thread
        yield
        return

    def handler(signum: int, frame: Any) -> None:  # only sets a flag: nothing is interrupted mid-write
        stop.set(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            # The console script exits with 130/143 right after an interruption; a repeated
            # signal must not change that. In-process callers get their handlers back.
            signal.signal(sig, signal.SIG_IGN if stop.signum is not None and _OWNS_PROCESS else old)


# Sampling options shared by generate and chat.
TemperatureOption = Annotated[Optional[float], _opt(SampleConfig, "temperature", "--temperature", "-t")]
TopKOption = Annotated[Optional[int], _opt(SampleConfig, "top_k", "--top-k")]
TopPOption = Annotated[Optional[float], _opt(SampleConfig, "top_p", "--top-p")]
SeedOption = Annotated[Optional[int], _opt(SampleConfig, "seed", "--seed")]
StopOption = Annotated[Optional[list[str]], _opt(SampleConfig, "stop", "--stop", metavar="TEXT")]


@app.command()
def generate(
    ckpt: CheckpointArg = None,
    prompt: Annotated[Optional[str], _opt(SampleConfig, "prompt", "--prompt", "-p")] = None,
    prompt_file: Annotated[
        Optional[Path], typer.Option("--prompt-file", metavar="FILE", help="Read the prompt from a file.")
    ] = None,
    max_new_tokens: Annotated[Optional[int], _opt(SampleConfig, "max_new_tokens", "--max-new-tokens", "-n")] = None,
    temperature: TemperatureOption = None,
    top_k: TopKOption = None,
    top_p: TopPOption = None,
    seed: SeedOption = None,
    num_samples: Annotated[Optional[int], _opt(SampleConfig, "num_samples", "--num-samples")] = None,
    stop: StopOption = None,
    no_kv_cache: Annotated[
        bool, typer.Option("--no-kv-cache", help="Recompute the whole context for every token (slow; for checks).")
    ] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Print the text once at the end.")] = False,
    device: DeviceOption = None,
) -> None:
    """Sample text from a checkpoint. stdout carries the prompt and the generated text only."""
    if prompt is not None and prompt_file is not None:
        raise ConfigError("give the prompt with --prompt or --prompt-file, not both.")
    if prompt == "-":
        prompt = sys.stdin.read()
    elif prompt_file is not None:
        from mygpt.data import read_text

        if not prompt_file.is_file():
            raise MyGPTError(f"no such prompt file: {prompt_file}")
        prompt = read_text(prompt_file)
    flags = {
        "prompt": prompt, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k,
        "top_p": top_p, "seed": seed, "num_samples": num_samples, "device": device,
        "stop": tuple(_unescape(s) for s in stop) if stop else None, "kv_cache": False if no_kv_cache else None,
    }  # fmt: skip
    cfg = build(SampleConfig, flags=flags)
    path = runs.resolve(ckpt)

    from mygpt import device as devices, sampling as gen

    dev = devices.resolve(cfg.device)
    loaded = checkpoint.load(path, device=str(dev))
    start = gen.prompt_ids(loaded.tokenizer, cfg.prompt)  # checks the prompt before anything is printed
    unseen = gen.prompt_tail(start, loaded.model.config.block_size)
    if unseen:
        ui.info(f"note: the prompt is {len(start)} tokens, longer than the context; the model sees its last "
                f"{len(start) - unseen}")  # fmt: skip
    seed_used = gen.resolve_seed(cfg.seed)
    ui.info(f"sampling from {path} with seed {seed_used}")
    steps = gen.generate(loaded.model, start, cfg, seed_used, dev, use_cache=cfg.kv_cache)
    _print_samples(steps, loaded.tokenizer, cfg, stream=not no_stream)


@app.command()
def chat(
    ckpt: CheckpointArg = None,
    max_new_tokens: Annotated[Optional[int], _opt(ChatConfig, "max_new_tokens", "--max-new-tokens", "-n")] = None,
    temperature: TemperatureOption = None,
    top_k: TopKOption = None,
    top_p: TopPOption = None,
    seed: SeedOption = None,
    template: Annotated[Optional[str], _opt(ChatConfig, "template", "--template")] = None,
    stop: Annotated[Optional[list[str]], _opt(ChatConfig, "stop", "--stop", metavar="TEXT")] = None,
    system: Annotated[Optional[str], _opt(ChatConfig, "system", "--system")] = None,
    device: DeviceOption = None,
) -> None:
    """Talk with a model, a turn at a time. /help lists the commands; /quit or Ctrl-D leaves.

    Works with piped input too: printf 'hello\\n/quit\\n' | mygpt chat
    """
    flags = {
        "max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k, "top_p": top_p,
        "seed": seed, "device": device, "template": _unescape(template) if template else None,
        "stop": tuple(_unescape(s) for s in stop) if stop else None, "system": _unescape(system) if system else None,
    }  # fmt: skip
    cfg = build(ChatConfig, flags=flags)
    path = runs.resolve(ckpt)

    from mygpt import device as devices
    from mygpt.chat import Conversation

    dev = devices.resolve(cfg.device)
    loaded = checkpoint.load(path, device=str(dev))
    conversation = Conversation(loaded.tokenizer, loaded.model.config.block_size, cfg)
    interactive = sys.stdin.isatty()
    if interactive:
        ui.info(f"chatting with {path}. /help for commands; /quit or Ctrl-D to leave.")
    raise typer.Exit(_chat_loop(loaded, conversation, cfg, dev, interactive))


CHAT_HELP = """commands:
  /quit        leave (Ctrl-D does too)
  /reset       forget the conversation
  /temp X      set the temperature (0 is greedy)
  /topk N      sample among the N most likely tokens (/topk 0 turns it off)
  /help        this list
Ctrl-C during a reply stops the reply; Ctrl-C at the prompt leaves."""


def _chat_loop(loaded: Any, conversation: Any, cfg: Any, dev: Any, interactive: bool) -> int:
    """Read lines, answer them; returns the exit code."""
    from mygpt import sampling as gen

    turn = 0
    while True:
        try:
            if interactive:
                ui.console.print("[bold]you>[/] ", end="")
            line = input() if interactive else sys.stdin.readline()
        except EOFError:
            return 0
        except KeyboardInterrupt:
            ui.info("")
            return 130
        if not interactive and not line:
            return 0  # end of piped input
        line = line.rstrip("\n")
        if line.startswith("/"):
            command, _, arg = line.partition(" ")
            if command == "/quit":
                return 0
            try:
                cfg = _chat_command(command, arg.strip(), cfg, conversation)
            except MyGPTError as exc:
                ui.error(str(exc))
            continue
        if not line.strip():
            continue
        try:
            ids = conversation.ask(line)
        except MyGPTError as exc:  # a line the vocabulary cannot encode: say so and go on
            ui.error(str(exc))
            continue
        turn += 1
        seed = gen.resolve_seed(None if cfg.seed is None else cfg.seed + turn)
        reply = gen.TextStream(loaded.tokenizer, cfg.stop)
        try:
            _stream(gen.generate(loaded.model, ids, cfg, seed, dev), reply)
        except KeyboardInterrupt:  # stop this reply, keep the conversation (and what was said)
            pass
        _write("\n")
        conversation.reply(reply.text)


def _chat_command(command: str, arg: str, cfg: Any, conversation: Any) -> Any:
    """Apply a /command; returns the (possibly changed) config."""
    if command == "/reset":
        conversation.reset()
        ui.info("(conversation forgotten)")
    elif command == "/help":
        ui.info(CHAT_HELP)
    elif command in ("/temp", "/topk"):
        key = "temperature" if command == "/temp" else "top_k"
        try:
            value = float(arg) if key == "temperature" else int(arg)
        except ValueError:
            raise ConfigError(f"{command} needs a number, e.g. {command} {'0.8' if key == 'temperature' else '40'}.") from None
        if key == "top_k" and value == 0:
            value = None
        cfg = build(type(cfg), base=cfg.model_dump(), flags={key: value}) if value is not None else cfg.model_copy(update={key: None})
        ui.info(f"({key} is now {getattr(cfg, key)})")
    else:
        raise ConfigError(f"unknown command {command}; /help lists them.")
    return cfg


@app.command()
def info(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Checkpoint files (default: every checkpoint under checkpoints/, newest first).", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (an object, or an array for several).")] = False,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", metavar="FILE.png", help="Also draw the loss curves to a PNG (needs matplotlib).")
    ] = None,
) -> None:
    """Describe checkpoints from their headers alone (fast: no weights are loaded)."""
    if paths:
        summaries = [runs.summary(checkpoint.read_header(p)) for p in paths]
    else:
        found = runs.find()
        if not found:
            raise MyGPTError("no checkpoints under checkpoints/. Train one with `mygpt train`, or give a path.")
        summaries = []
        for p in found:
            try:
                summaries.append(runs.summary(checkpoint.read_header(p)))
            except MyGPTError as exc:  # one stray file should not hide the others
                ui.info(f"skipped: {exc}")
    curves = [runs.loss_curves(s) for s in summaries]
    if plot is not None:
        from mygpt.chart import save_plot

        ui.info(f"loss curves written to {save_plot({Path(s['path']).name: c for s, c in zip(summaries, curves, strict=True)}, plot)}")
    if as_json:
        typer.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    else:
        ui.show_info(summaries, curves)


@app.command("eval")
def eval_(
    ckpt: CheckpointArg = None,
    text: Annotated[Optional[Path], typer.Option("--text", metavar="FILE", help="Score this text file.")] = None,
    data: Annotated[
        Optional[Path], typer.Option("--data", metavar="DIR", help="Score the val split of this prepared data.")
    ] = None,
    stride: Annotated[
        Optional[int], typer.Option("--stride", min=1, help="Tokens between window starts (default: half the context).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: loss, perplexity, bits_per_byte, tokens.")] = False,
    device: DeviceOption = None,
) -> None:
    """Loss, perplexity and bits per byte on held-out text (default: the checkpoint's own val split)."""
    from mygpt import data as datamod, device as devices
    from mygpt.scoring import score

    if text is not None and data is not None:
        raise ConfigError("give --text or --data, not both.")
    loaded = checkpoint.load(runs.resolve(ckpt), str(devices.resolve(device or "auto")))
    if text is not None:
        if not text.is_file():
            raise MyGPTError(f"no such file: {text}")
        ids = loaded.tokenizer.encode(datamod.read_text(text))
        source = str(text)
    else:
        stored = loaded.header.meta.data
        folder = data or Path(stored.path if stored and stored.path else "")
        if not (folder / "meta.json").is_file():
            raise MyGPTError(f"no prepared data at {folder}; give --text FILE or --data DIR to score.")
        prepared = datamod.load(folder)
        if prepared.tokenizer.to_dict() != loaded.tokenizer.to_dict():
            raise MyGPTError(f"the data in {folder} uses a different tokenizer than {loaded.header.path}.")
        ids, source = prepared.val.tolist(), f"{folder} (val split)"
    if len(ids) < 2:
        raise MyGPTError(f"{source} has {len(ids)} token(s): at least 2 are needed to score anything.")
    result = score(loaded.model, ids, loaded.tokenizer, stride)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    ui.info(f"scored {result.tokens:,} tokens ({result.bytes:,} bytes) of {source}")
    typer.echo(f"loss {result.loss:.4f}  perplexity {result.perplexity:.2f}  bits per byte {result.bits_per_byte:.4f}")


import_app = typer.Typer(cls=_App, no_args_is_help=True, help="Turn weights from elsewhere into a mygpt checkpoint.")
export_app = typer.Typer(cls=_App, no_args_is_help=True, help="Write a mygpt checkpoint in another format.")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
OutOption = Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder that receives the checkpoint.")]


@import_app.command("hf")
def import_hf(
    folder: Annotated[Path, typer.Argument(help="A Hugging Face GPT-2 folder: config.json, model.safetensors, vocab.json, merges.txt.")],
    out: OutOption = Path("checkpoints"),
) -> None:
    """Convert a local Hugging Face GPT-2 folder (gpt2 ... gpt2-xl). Prints the checkpoint path."""
    from mygpt import convert

    config, weights, tokenizer = convert.read_hf(folder)
    typer.echo(str(convert.save_imported(config, weights, tokenizer, out, str(folder))))


@import_app.command("nanogpt")
def import_nanogpt(
    ckpt: Annotated[Path, typer.Argument(help="nanoGPT's ckpt.pt.")],
    corpus: Annotated[
        Optional[Path],
        typer.Option("--corpus", metavar="TEXT", help="The text its prepare.py read: its characters (else GPT-2 BPE)."),
    ] = None,
    out: OutOption = Path("checkpoints"),
) -> None:
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


def _print_samples(steps: Iterator[Any], tokenizer: Any, cfg: SampleConfig, stream: bool = True) -> None:
    """Write the prompt and the sampled text to stdout: streamed for one sample, each in
    turn for several. A sample ends at a stop string (not printed); generation ends when
    every sample has."""
    from mygpt.sampling import TextStream

    texts = [TextStream(tokenizer, cfg.stop) for _ in range(cfg.num_samples)]
    if cfg.num_samples == 1 and stream:
        _write(cfg.prompt)
        _stream(steps, texts[0])
        _write("\n")
        return
    outputs = [""] * cfg.num_samples
    for ids in steps:  # (num_samples,) ids per step
        for n, i in enumerate(ids.tolist()):
            outputs[n] += texts[n].push([i])
        if all(t.stopped for t in texts):
            break
    for n, out in enumerate(outputs):
        if cfg.num_samples > 1:
            ui.info(f"--- sample {n + 1}/{cfg.num_samples} ---")
        _write(cfg.prompt + out + texts[n].finish() + "\n")


def _stream(steps: Iterator[Any], text: Any) -> None:
    """Write one sample's text to stdout as it comes, until its stop string or the end."""
    for ids in steps:  # (1,) ids per step
        _write(text.push(ids.tolist()))
        if text.stopped:
            break
    _write(text.finish())


def _unescape(text: str) -> str:
    """Let \\n and \\t typed on a command line mean a newline and a tab."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


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
        # Tearing torch down at interpreter exit takes ~1 s and, oddly, raises the peak
        # RSS by ~120 MB. Every file is written and closed by now: flush and leave.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
