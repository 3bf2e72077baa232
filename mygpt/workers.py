"""Worker processes that map a function over a stream of items, results in input order.

Each worker has its own task queue and result queue, and items are dealt round-robin,
so results come back in input order by reading the workers' queues in turn: nothing
to sort, and 1 worker and 8 write the same bytes. At most IN_FLIGHT items per worker
are out at a time, so memory does not grow with the stream. Queues send from a
background thread, so neither side blocks the other on a full pipe.

The workers are daemon processes that ignore Ctrl-C: when the caller stops (Ctrl-C, an
error), they are terminated at once and nothing waits on them. With n = 1 everything
runs in this process (no start-up cost).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

from mygpt.errors import DataError

T = TypeVar("T")
IN_FLIGHT = 2  # items per worker sent and not yet read back


class Workers:
    """`with Workers(n) as workers: for item, result in workers.map(fn, items): ...`.
    The processes start on entry, before the caller has read anything: forked workers
    share the caller's memory as it is at that moment."""

    def __init__(self, n: int):
        self.n = n
        self._procs: list[Any] = []
        self._queues: list[tuple[Any, Any]] = []

    def __enter__(self) -> Workers:
        if self.n > 1:
            context = _context()
            for _ in range(self.n):
                tasks, results = context.Queue(), context.Queue()
                proc = context.Process(target=_serve, args=(tasks, results), daemon=True)
                proc.start()
                self._procs.append(proc)
                self._queues.append((tasks, results))
        return self

    def __exit__(self, kind: Optional[type], exc: Optional[BaseException], tb: Any) -> None:
        for proc, (tasks, results) in zip(self._procs, self._queues, strict=False):
            if kind is None:
                tasks.put(None)  # finish: the worker returns when it reads this
            else:
                proc.terminate()
            tasks.cancel_join_thread()  # never wait at exit for items nobody will read
            results.cancel_join_thread()
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()

    def map(self, fn: Callable[[T], Any], items: Iterable[T]) -> Iterator[tuple[T, Any]]:
        """(item, fn(item)) for every item, in order; fn must be picklable (a module's function)."""
        if not self._procs:
            for item in items:
                yield item, fn(item)
            return
        pending: deque[tuple[int, T]] = deque()  # (worker, item) in the order sent
        try:
            for i, item in enumerate(items):
                worker = i % self.n
                if len(pending) >= IN_FLIGHT * self.n:
                    yield self._next(pending)
                self._queues[worker][0].put((fn, item))
                pending.append((worker, item))
            while pending:
                yield self._next(pending)
        except GeneratorExit:  # the caller stopped early: read what is still coming, for the next map
            while pending:
                self._next(pending)
            raise

    def _next(self, pending: deque) -> tuple[Any, Any]:
        worker, item = pending.popleft()
        results, proc = self._queues[worker][1], self._procs[worker]
        while True:
            try:
                ok, value = results.get(timeout=1.0)
                break
            except queue.Empty:
                if not proc.is_alive():
                    raise DataError(
                        f"a worker process stopped unexpectedly (exit code {proc.exitcode}): out of memory, killed, or, "
                        'from a Python script, started again by it: call prepare under `if __name__ == "__main__":`, '
                        "or use one worker."
                    ) from None
        if not ok:
            is_data_error, message = value
            raise DataError(message) if is_data_error else RuntimeError(message)
        return item, value


def _large_blocks_mapped() -> None:
    """Have glibc give every block of 1 MiB or more its own mapping, returned to the system
    when freed. By default the threshold rises after such a block is freed, later ones
    come from the heap, and a worker that handles megabyte strings for an hour grows
    (measured: +25 MB per worker between 1 and 3 GB of text)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _context() -> Any:
    """fork on Linux while torch is not loaded (the CLI's case): workers start at once and
    do not import the caller's script again. Otherwise spawn, as forking a process that
    runs torch's threads can hang; spawned workers import the caller's main module again,
    so a script needs Python's `if __name__ == "__main__":` guard."""
    fork = sys.platform.startswith("linux") and "torch" not in sys.modules
    return multiprocessing.get_context("fork" if fork else "spawn")


def _serve(tasks: Any, results: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    # A forked worker inherits the main process's SIGTERM handler (it raises an interrupt to
    # clean up there); here a plain exit is right: the main process cleans up and reports.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _large_blocks_mapped()
    parent = os.getppid()
    while True:
        try:
            job = tasks.get(timeout=2.0)
        except queue.Empty:
            if os.getppid() != parent:  # the main process was killed (SIGKILL): nobody needs us
                return
            continue
        if job is None:
            return
        fn, item = job
        try:
            results.put((True, fn(item)))
        except Exception as exc:  # sent back as text and raised there: a DataError reads as usual
            message = str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
            results.put((False, (isinstance(exc, DataError), message)))
