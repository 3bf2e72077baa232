"""The CLI's side of the terminal: progress bars, loss tables, summaries (all on stderr),
the product on stdout, lines typed to `mygpt chat`, and Ctrl-C during training.

stdout is kept for the product (generated text, a path, JSON), so that it can be piped.
On a terminal, training shows a live rich progress bar; when stderr is not a terminal
(a log file, CI), it prints plain periodic lines instead.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from typing import Any, Iterable, Iterator, Optional

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mygpt.events import Evaluated, Finished, Interrupted, Notice, Started, Stepped, StopFlag, TrainEvent

console = Console(stderr=True, highlight=False)

LOSS_HEADER = f"{'step':>8}  {'train loss':>10}  {'val loss':>9}  {'val ppl':>8}  {'lr':>9}  {'time':>8}"


def error(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True, emoji=False)


def info(message: str) -> None:
    console.print(message, markup=False, soft_wrap=True, emoji=False)


def write(text: str) -> None:
    """Product text to stdout, shown at once."""
    sys.stdout.write(text)
    sys.stdout.flush()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so that the same clean-up runs; exits 143."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While open, SIGTERM (kill, timeout) interrupts like Ctrl-C, as a `Terminated`."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def read_line() -> Optional[str]:
    """The next line the person types (after a `you>` prompt) or pipes in; None at the end of input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline() or None
    console.print("[bold]you>[/] ", end="")
    try:
        return input()
    except EOFError:
        return None


def tokenizer_name(tok: dict[str, Any]) -> str:
    """'char', 'bpe' (trained here) or 'bpe (gpt2)' for a pretrained encoding."""
    encoding = tok.get("encoding")
    return tok["type"] if encoding in (None, "bpe") else f"{tok['type']} ({encoding})"


def loss_row(step: int, train_loss: float, val_loss: float, lr: float, elapsed: float) -> str:
    return (
        f"{step:>8}  {train_loss:>10.4f}  {val_loss:>9.4f}  {_ppl(val_loss):>8.2f}  {lr:>9.2e}  {_duration(elapsed):>8}"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf  # exp overflows past ~709


def render_training(events: Iterable[TrainEvent], show: bool = True) -> Optional[TrainEvent]:
    """Show training events as they come (unless `show` is False: ranks other than 0);
    return the last one (Finished or Interrupted)."""
    if not show:
        last = None
        for last in events:  # noqa: B007 -- drains the events, keeping the last
            pass
        return last
    return _TrainingView().run(events)


@contextlib.contextmanager
def stop_on_signals(stop: StopFlag, exiting: bool = False) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask training (through `stop`) to finish its
    step and save; a second one just waits for the save. `exiting`: the process exits
    right after (the console script), so the signals stay ignored once one came."""
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
            # A repeated signal must not change the exit code (130/143) of an interrupted
            # console script; in-process callers get their handlers back.
            signal.signal(sig, signal.SIG_IGN if stop.signum is not None and exiting else old)


class _TrainingView:
    """Live progress bar on a terminal; plain lines every ~5% of the run otherwise."""

    def __init__(self) -> None:
        self.header_shown = False
        self.progress: Optional[Progress] = None
        self.task: Any = None
        self.printed_step = 0
        self.print_every = 1

    def run(self, events: Iterable[TrainEvent]) -> Optional[TrainEvent]:
        last = None
        if console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]step"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
            )
            self.progress.start()
        try:
            for last in events:  # noqa: B007 -- drains the events, keeping the last
                self.show(last)
        finally:
            if self.progress is not None:
                self.progress.stop()
        return last

    def show(self, event: TrainEvent) -> None:
        if isinstance(event, Started):
            self.started(event)
        elif isinstance(event, Stepped):
            self.stepped(event)
        elif isinstance(event, Evaluated):
            if not self.header_shown:
                info(LOSS_HEADER)
                self.header_shown = True
            row = loss_row(event.step, event.train_loss, event.val_loss, event.lr, event.elapsed)
            console.print(row + ("  [green]best[/]" if event.is_best else ""), highlight=False)
        elif isinstance(event, Notice):
            console.print(f"[yellow]note:[/] {event.message}", highlight=False, soft_wrap=True)
        elif isinstance(event, Finished):
            why = {
                "max_time": " (--max-time reached)",
                "patience": " (--patience: no new best val loss)",
                "target_loss": " (--target-loss reached)",
            }
            info(
                f"done: {_count(event.step, 'step')} in {_duration(event.elapsed)}{why.get(event.reason, '')}, "
                f"best val loss {event.best_val_loss:.4f}"
            )
        elif isinstance(event, Interrupted):
            name = "interrupted" if event.signum is None else f"stopped by {signal.Signals(event.signum).name}"
            if event.path:
                info(f"{name} at step {event.step}; weights and training state saved to {event.path}")
            else:
                info(f"{name} before the first step; nothing was saved")

    def started(self, event: Started) -> None:
        cfg, m = event.config, event.config.model
        info(
            f"training {event.num_params / 1e6:.2f}M parameters ({_count(m.n_layer, 'layer')}, {_count(m.n_head, 'head')}, "
            f"n_embd {m.n_embd}, block_size {m.block_size}) on {event.device}, {event.dtype}"
            + (", compiled" if event.compiled else "")
            + (f"; resuming at step {event.start_step}" if event.start_step else "")
        )
        tokens_per_step = cfg.tokens_per_step(event.world_size)
        ranks = (
            f" (global batch {cfg.batch_size} x {cfg.grad_accum} accumulation x {event.world_size} ranks "
            f"= {cfg.batch_size * cfg.grad_accum * event.world_size} sequences)"
            if event.world_size > 1
            else ""
        )
        info(
            f"data {cfg.data}: {event.train_tokens:,} train / {event.val_tokens:,} val tokens; "
            f"{tokens_per_step:,} tokens per step{ranks}; checkpoint {event.path}"
        )
        self.print_every = max(1, cfg.max_iters // 20)
        self.printed_step = event.start_step
        if self.progress is not None:
            self.task = self.progress.add_task(
                "train", total=cfg.max_iters, completed=event.start_step, loss="-", lr="-", speed=""
            )

    def stepped(self, event: Stepped) -> None:
        if self.progress is not None:
            fields = {"lr": f"{event.lr:.2e}"}
            if event.loss is not None:
                fields.update(loss=f"{event.loss:.4f}", speed=f"{event.tokens_per_sec:,.0f} tok/s")
            self.progress.update(self.task, completed=event.step, **fields)
        elif event.loss is not None and (
            event.step - self.printed_step >= self.print_every or event.step == event.max_iters
        ):
            self.printed_step = event.step
            info(
                f"step {event.step}/{event.max_iters}  loss {event.loss:.4f}  lr {event.lr:.2e}  "
                f"{event.tokens_per_sec:,.0f} tok/s  {_duration(event.elapsed)}"
            )


def info_table(s: dict[str, Any]) -> Table:
    """One checkpoint's summary (from runs.summary) as a table."""
    table = Table(title=s["path"], show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    m = s["model"]
    tok = s["tokenizer"]
    data = s["data"] or {}
    rows = [
        ("created", s["created"] or "-"),
        ("parameters", f"{s['params']:,} ({s['params'] / 1e6:.2f}M)"),
        (
            "model",
            f"{_count(m['n_layer'], 'layer')}, {_count(m['n_head'], 'head')}, n_embd {m['n_embd']}, block_size {m['block_size']}, "
            f"{m['pos']} positions, dropout {m['dropout']}, bias {m['bias']}",
        ),
        (
            "tokenizer",
            f"{tokenizer_name(tok)}, vocab size {tok['vocab_size']:,}"
            + (f", {s['bytes_per_token']:.2f} bytes per token on its corpus" if s["bytes_per_token"] else ""),
        ),
        ("data", f"{data.get('corpus', '-')} ({data.get('path', '-')}), sha256 {str(data.get('checksum'))[:12]}"),
        ("steps", f"{_num(s['step'])} of {_num(s['max_iters'])}, {_num(s['tokens_seen'])} tokens seen"),
        ("train / val loss", f"{_loss(s['train_loss'])} / {_loss(s['val_loss'])}"),
        ("best val loss", _loss(s["best_val_loss"])),
        (
            "best weights",
            f"{s['best']['path']} (step {s['best']['step']:,}; generate from it by passing its path)"
            if s["best"]
            else "-",
        ),
        ("device", f"{s['device'] or '-'} (world size {s['world_size']})"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def history_table(history: list[dict[str, Any]]) -> Optional[Table]:
    if not history:
        return None
    best = min(h["val_loss"] for h in history)
    shown = _rows_shown(history, best)
    title = (
        "evaluations" if len(shown) == len(history) else f"evaluations: {len(history):,} (first, best and last shown)"
    )
    table = Table(title=title, title_justify="left")
    for name in ("step", "train loss", "val loss", "val ppl", "lr", "time"):
        table.add_column(name, justify="right")
    previous = -1
    for i in shown:
        if i > previous + 1:  # rows left out
            table.add_row(f"… {i - previous - 1:,}", *[""] * 5, style="dim")
        h, previous = history[i], i
        style = "green" if h["val_loss"] == best else None
        table.add_row(
            str(h["step"]),
            f"{h['train_loss']:.4f}",
            f"{h['val_loss']:.4f}",
            f"{_ppl(h['val_loss']):.2f}",
            f"{h['lr']:.2e}",
            _duration(h["elapsed"]),
            style=style,
        )
    return table


HISTORY_ROWS = 5  # a longer history shows this many evaluations at each end, and the best


def _rows_shown(history: list[dict[str, Any]], best: float) -> list[int]:
    """Indices of the evaluations the table shows: all of a short history; of a long one
    (thousands of rows would bury everything else) the first and last few and the best."""
    if len(history) <= 3 * HISTORY_ROWS:
        return list(range(len(history)))
    best_at = next(i for i, h in enumerate(history) if h["val_loss"] == best)
    ends = range(HISTORY_ROWS), range(len(history) - HISTORY_ROWS, len(history))
    return sorted({*ends[0], best_at, *ends[1]})


def show_info(summaries: list[dict[str, Any]], curves: list[dict[str, list]]) -> None:
    """Each checkpoint: its table, then the loss table with the loss chart beside it."""
    from mygpt.chart import text_chart

    for s, series in zip(summaries, curves, strict=True):
        console.print(info_table(s))
        history = history_table(s["history"])
        if history is None:
            continue
        chart = Text("\n".join(text_chart(series)))
        chart.highlight_regex("•+", "cyan")
        chart.highlight_regex("×+", "magenta")
        if console.width >= 120:
            grid = Table.grid(padding=(0, 3))
            grid.add_row(history, chart)
            console.print(grid)
        else:
            console.print(history)
            console.print(chart)


def _loss(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.4f}"


def _num(v: Optional[int]) -> str:
    return "-" if v is None else f"{v:,}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
