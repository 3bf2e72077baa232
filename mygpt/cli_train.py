"""`mygpt train`, and My Toy GPT's `training` (the same command with that project's
defaults, and its --epochs counting steps): options -> config -> `training.train` ->
the events rendered on the terminal (and written to a log file) -> the checkpoint path.

Besides mygpt's own options it takes the seed projects' ways of asking for things:
`--dataset FILE` (a text file, prepared on the fly), `--load NAME` (a checkpoint's weights
start the run: --init-from), `--output NAME` (the run's folder under checkpoints/),
`--no-save` (nothing is kept), `--generate N` (sample N tokens once trained), `--resume`
with no value (the newest run), `--log-level` and `--log-file`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Iterator, Optional

import typer

from mygpt import distributed, runs, ui
from mygpt.config import DEFAULT_OUT_DIR, SampleConfig, TrainConfig
from mygpt.configure import PRESETS, build
from mygpt.errors import ConfigError, MyGPTError
from mygpt.events import Evaluated, Finished, Interrupted, Notice, Saved, Started, Stepped, StopFlag, TrainEvent
from mygpt.options import TRAIN_OPTIONS, labels

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def command(defaults: dict[str, Any], program: str, help: str) -> Callable[..., None]:
    """The train command as `program` (what a user types to run it), with `defaults` as
    its lowest config layer (a preset's values)."""

    @functools.wraps(train)
    def run(**kwargs: Any) -> None:
        train(defaults=defaults, program=program, **kwargs)

    hidden = ("defaults", "program")
    params = [p for p in inspect.signature(train, eval_str=True).parameters.values() if p.name not in hidden]
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__doc__ = help
    return run


def train(
    flags: dict[str, Any],
    defaults: dict[str, Any],
    program: str,
    preset: Annotated[Optional[str], typer.Option("--preset", help=f"Start from a preset: {', '.join(PRESETS)}.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", metavar="FILE", help="A .toml, .json or .yaml config file.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Set any config field: --set model.n_layer=6 (repeatable).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", metavar="[CKPT]",
        help="Continue a run exactly where it was saved (same files); alone: the newest run in --out.")] = None,
    init_from: Annotated[Optional[str], typer.Option("--init-from", metavar="CKPT",
        help="Start a new run from a checkpoint's weights (fresh optimizer); a name is looked up in --out.")] = None,
    load: Annotated[Optional[str], typer.Option("--load", metavar="NAME",
        help="My Toy GPT's: as --init-from, and the new run is saved beside it (in its --output folder).")] = None,
    strict: Annotated[bool, typer.Option("--strict/--no-strict", " /--no-strict-init",
        help="With --init-from: every tensor must fit (--no-strict initialises the rest fresh).")] = True,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "--text-path", metavar="FILE",
        help="Train on a text file (a path, or a file in data/), prepared char-level on the fly.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", metavar="NAME",
        help=f"Write the run into {DEFAULT_OUT_DIR}/NAME/ (a folder; load it back with --load NAME).")] = None,
    no_save: Annotated[bool, typer.Option("--no-save", help="Keep nothing: no checkpoint, state or metrics.")] = False,
    generate: Annotated[Optional[int], typer.Option("--generate", "-g", metavar="N", min=1,
        help="Once trained, sample N tokens from the model and print them.")] = None,
    log_level: Annotated[str, typer.Option("--log-level", metavar="LEVEL",
        help="debug, info, warning or error: what the terminal and --log-file show.")] = "info",
    log_file: Annotated[Optional[Path], typer.Option("--log-file", metavar="FILE",
        help="Append the run's progress to this file, one timestamped line per event.")] = None,
    tokenizer_path: Annotated[Optional[str], typer.Option("--tokenizer-path", hidden=True)] = None,
) -> None:  # fmt: skip
    """Train a model; prepares the default corpus first if needed. Prints the checkpoint path."""
    if init_from and load:
        raise ConfigError("--init-from and --load both name the starting weights: give one of them.")
    if resume and (init_from or load):
        raise ConfigError("--resume continues a run and --init-from starts a new one: give one of them.")
    if flags.get("epochs") is not None and flags["max_iters"] is not None:
        raise ConfigError("--epochs and --max-iters both say how long to train: give one of them.")
    if flags["auto_tie_weights"] and flags["model.tie_weights"] is not None:
        raise ConfigError("--auto-tie-weights decides whether to tie from the data: leave out --(no-)tie-weights.")
    if log_level.lower() not in LEVELS:
        raise ConfigError(f"--log-level {log_level!r} is not one of: {', '.join(LEVELS)}.")
    if tokenizer_path is not None:
        ui.info("note: no tokenizer file is needed: the prepared data folder (--data) holds its tokenizer")
    level = LEVELS[log_level.lower()]
    with _log_to(log_file, level) as log:  # a log file that cannot be written is found before any work
        if load is not None:
            init_from = load
            if not (flags["out_dir"] or output or no_save):  # the new run goes beside the one it loads
                flags["out_dir"] = str(runs.resolve(load).parent)
        _place_output(flags, output, no_save, resume)
        scratch = flags["out_dir"] if no_save else None
        try:
            cfg, resume_path, init_path = _config(flags, defaults, preset, config, set_, resume, init_from, dataset)
            if init_path is not None:
                ui.info(f"starting from the weights of {init_path}")
            if scratch is not None:
                ui.info("note: --no-save: the run's files are deleted when it ends")
            last = _run(cfg, resume_path, init_path, strict, level, log, kept=scratch is None, program=program)
            if generate is not None and isinstance(last, Finished):
                _sample_after(last.path, generate, cfg)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)


def _place_output(flags: dict[str, Any], output: Optional[str], no_save: bool, resume: Optional[str]) -> None:
    """--output NAME and --no-save decide the run's folder (flags["out_dir"])."""
    given = [
        name for name, value in (("--out", flags["out_dir"]), ("--output", output), ("--no-save", no_save)) if value
    ]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} both say where the run goes: give one of them.")
    if no_save and resume:
        raise ConfigError("--resume continues a run in its own files; --no-save keeps none: give one of them.")
    if output is not None:  # a name (a .pt or .pth suffix dropped), or a path
        name = output.removesuffix(".pt").removesuffix(".pth")
        flags["out_dir"] = output if Path(output).parent != Path(".") else str(Path(DEFAULT_OUT_DIR) / name)
    if no_save:
        flags["out_dir"] = tempfile.mkdtemp(prefix="mygpt-nosave-")


def _config(
    flags: dict[str, Any], defaults: dict[str, Any], preset: Optional[str], config: Optional[Path],
    sets: Optional[list[str]], resume: Optional[str], init_from: Optional[str], dataset: Optional[str],
) -> tuple[TrainConfig, Optional[Path], Optional[Path]]:  # fmt: skip
    """The run's config from its layers, and the checkpoints it resumes or starts from."""
    from mygpt import checkpoint, data, device as devices, memory, prepare_view, training

    out_dir = flags["out_dir"] or DEFAULT_OUT_DIR
    resume_path = runs.resolve(None if resume == "latest" else resume, out_dir) if resume else None
    init_path = runs.resolve(init_from, out_dir) if init_from else None
    headers = {path: checkpoint.read_header(path) for path in filter(None, (resume_path, init_path))}
    for path, header in headers.items():  # its config decides nothing before its tensors agree
        memory.check_shapes(header.meta.model, header.shapes, str(path))
    base = training.resume_base(resume_path) if resume_path else dict(defaults)
    if init_path is not None:  # the architecture comes from the checkpoint, the vocabulary from the data
        base["model"] = headers[init_path].meta.model.model_dump(mode="json", exclude={"vocab_size"})
    if flags["lr"] is not None and flags["min_lr"] is None and base.get("min_lr", -1) > flags["lr"]:
        del base["min_lr"]  # a run resumed at a lower --lr: min_lr follows it, as in a new run
    if dataset is not None:
        if flags["data"] is not None:
            raise ConfigError("--dataset and --data both name the data: give one of them.")
        progress, on_progress = prepare_view.prepare_progress()
        with progress:
            flags["data"] = str(data.ensure_text(dataset, on_progress=on_progress))
    cfg = build(TrainConfig, base=base, preset=preset, file=config, flags=flags, sets=sets or (), labels=labels(TRAIN_OPTIONS))  # fmt: skip
    devices.resolve(cfg.device)  # an unavailable device is reported before any download
    world = distributed.from_env()  # under torchrun: only rank 0 downloads, prints and writes
    if cfg.data is None and world.is_main:
        progress, on_progress = prepare_view.prepare_progress()
        with progress:
            cfg = cfg.model_copy(update={"data": str(data.ensure_default(on_progress=on_progress))})
    return cfg, resume_path, init_path


def _run(
    cfg: TrainConfig, resume: Optional[Path], init_from: Optional[Path], strict: bool, level: int,
    log: Optional[logging.Logger], kept: bool, program: str,
) -> Optional[TrainEvent]:  # fmt: skip
    """Train, showing the events as `level` says; the last event (Finished or Interrupted).
    `kept`: the run's files stay (not --no-save), so their path is printed."""
    from mygpt import cli, training

    world = distributed.from_env()
    stop = StopFlag()
    with ui.stop_on_signals(stop, exiting=cli.OWNS_PROCESS):
        events = _logged(training.train(cfg, resume=resume, init_from=init_from, strict=strict, stop=stop), log)
        if level <= logging.INFO:
            last = ui.render_training(events, show=world.is_main)
        else:  # warnings (notices) and errors only
            last = ui.render_training(_notices_shown(events, world.is_main and level <= logging.WARNING), show=False)
    if isinstance(last, Interrupted):
        if last.path and world.is_main and kept:
            launch = f"torchrun --nproc-per-node {world.size} -m mygpt train" if world.enabled else program
            ui.info(f"resume with: {launch} --resume {last.path}")
            typer.echo(str(last.path))
        raise typer.Exit(143 if last.signum == signal.SIGTERM else 130)
    if world.is_main and isinstance(last, Finished) and kept:
        typer.echo(str(last.path))
    return last


def _notices_shown(events: Iterable[TrainEvent], show: bool) -> Iterator[TrainEvent]:
    for event in events:
        if show and isinstance(event, Notice):
            ui.info(f"warning: {event.message}")
        yield event


def _sample_after(path: Path, num_tokens: int, cfg: TrainConfig) -> None:
    """My Toy GPT's --generate N: sample from the model just trained, on the same device."""
    from mygpt import checkpoint, cli_sample, device as devices

    dev = devices.resolve(cfg.device)
    sample = SampleConfig(max_new_tokens=num_tokens, seed=cfg.seed, device=cfg.device)
    cli_sample.sample(checkpoint.load(path, device=str(dev)), sample, path, dev)


@contextlib.contextmanager
def _log_to(path: Optional[Path], level: int) -> Iterator[Optional[logging.Logger]]:
    """A logger appending to `path` at `level` while open; None when there is no file."""
    if path is None:
        yield None
        return
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise MyGPTError(f"cannot write the log file {path}: {exc.strerror}.") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("mygpt.train")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


def _logged(events: Iterable[TrainEvent], log: Optional[logging.Logger]) -> Iterator[TrainEvent]:
    """The events, each also written to the log as one line at its level."""
    for event in events:
        if log is not None:
            level, line = _log_line(event)
            log.log(level, line)
        yield event


def _log_line(event: TrainEvent) -> tuple[int, str]:
    if isinstance(event, Started):
        cfg = event.config
        return logging.INFO, (
            f"started {event.path}: {event.num_params:,} parameters on {event.device} ({event.dtype}), "
            f"{event.train_tokens:,} training tokens, steps {event.start_step} to {cfg.max_iters}"
        )
    if isinstance(event, Stepped):
        loss = "" if event.loss is None else f" loss {event.loss:.4f}"
        return logging.DEBUG, f"step {event.step}/{event.max_iters}{loss} lr {event.lr:.3g}"
    if isinstance(event, Evaluated):
        return logging.INFO, (
            f"step {event.step}: train loss {event.train_loss:.4f}, val loss {event.val_loss:.4f}"
            + (" (best)" if event.is_best else "")
        )
    if isinstance(event, Saved):
        return logging.DEBUG, f"saved {event.path} at step {event.step}"
    if isinstance(event, Notice):
        return logging.WARNING, event.message
    if isinstance(event, Interrupted):
        return logging.WARNING, f"interrupted at step {event.step}" + (f"; saved {event.path}" if event.path else "")
    return logging.INFO, (
        f"finished at step {event.step} ({event.reason}): best val loss {event.best_val_loss:.4f}, {event.elapsed:.1f} s"
    )
