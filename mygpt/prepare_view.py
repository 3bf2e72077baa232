"""What `mygpt prepare` shows on stderr: live progress as it reads, and a summary at the end.

On a terminal, a progress bar per phase: bytes read of the total, MB/s, documents,
tokens and the time left. When stderr is not a terminal (a log file, CI), a plain line
when a phase starts and then every PLAIN_EVERY seconds.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, ContextManager, Optional

from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from mygpt.events import PrepareProgress
from mygpt.ui import console, info, tokenizer_name

PLAIN_EVERY = 10.0  # seconds between plain progress lines


def prepare_progress() -> tuple[ContextManager[Any], Callable[[PrepareProgress], None]]:
    """A context that shows progress while it is open, and the callback that feeds it."""
    if console.is_terminal:
        return _live()
    return contextlib.nullcontext(), _Plain()


def _live() -> tuple[ContextManager[Any], Callable[[PrepareProgress], None]]:
    progress = Progress(
        TextColumn("{task.description:<22}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TextColumn("{task.fields[counts]}"), TimeRemainingColumn(), console=console, transient=True,
    )  # fmt: skip
    tasks: dict[str, Any] = {}

    def on_progress(event: PrepareProgress) -> None:
        if event.phase not in tasks:
            for task in tasks.values():
                progress.update(task, visible=False)
            tasks[event.phase] = progress.add_task(event.phase, total=event.total, counts="")
        progress.update(tasks[event.phase], completed=event.done, total=event.total, counts=_counts(event))

    return progress, on_progress


class _Plain:
    def __init__(self) -> None:
        self.phase: Optional[str] = None
        self.started = self.shown = 0.0

    def __call__(self, event: PrepareProgress) -> None:
        now = time.monotonic()
        if event.phase != self.phase:
            self.phase, self.started = event.phase, now
        elif now - self.shown < PLAIN_EVERY:
            return
        self.shown = now
        line = f"{event.phase}: {_size(event.done)}"
        if event.total:
            line += f" of {_size(event.total)} ({100 * event.done / event.total:.0f}%)"
        elapsed = now - self.started
        if elapsed > 0 and event.done:
            line += f", {event.done / 1e6 / elapsed:.1f} MB/s"
            if event.total:
                line += f", {max(event.total - event.done, 0) * elapsed / event.done:.0f} s left"
        counts = _counts(event)
        info(line + (f", {counts}" if counts else ""))


def _size(n: int) -> str:
    if n == 0:
        return "0 B"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def _counts(event: PrepareProgress) -> str:
    parts = [f"{event.documents:,} document{'s' * (event.documents != 1)}"] if event.documents else []
    return ", ".join(parts + ([f"{event.tokens:,} tokens"] if event.tokens else []))


def prepare_summary(out: str, meta: dict[str, Any]) -> None:
    table = Table(title=f"prepared {out}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    sources, n_files = meta["sources"], meta.get("files", len(meta["sources"]))
    shown = ", ".join(s["path"] for s in sources[:3]) + (f" (+{n_files - 3} more)" if n_files > 3 else "")
    total = meta.get("bytes", sum(s["bytes"] for s in sources))
    documents = f", {meta['documents']:,} document{'s' * (meta['documents'] != 1)}" if "documents" in meta else ""
    table.add_row("sources", f"{shown}: {total:,} bytes{documents}")
    trained = f", trained in {meta['tokenizer_seconds']:.2f} s" if "tokenizer_seconds" in meta else ""
    if "tokenizer_sample" in meta:
        trained += f" on a {meta['tokenizer_sample']['bytes'] / 1e6:,.1f} MB sample"
    table.add_row(
        "tokenizer", f"{tokenizer_name(meta['tokenizer'])}, vocab size {meta['tokenizer']['vocab_size']:,}{trained}"
    )
    table.add_row(
        "tokens", f"{meta['tokens']['train']:,} train / {meta['tokens']['val']:,} val ({meta['split']} split)"
    )
    table.add_row("token files", f"{meta['dtype']}, {meta['bytes_per_token']:.2f} bytes of text per token")
    console.print(table)
    if meta.get("skipped_records"):
        example = escape(meta["skipped_examples"][0]) if meta.get("skipped_examples") else ""
        console.print(f"[yellow]skipped {meta['skipped_records']:,} bad records[/], for example: {example}",
                      highlight=False, markup=True)  # fmt: skip
    if "note" in meta:
        console.print(f"[yellow]note:[/] {meta['note']}", highlight=False)
