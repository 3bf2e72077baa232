"""The decoding engine behind `mygpt serve`: one model, one batch, one thread.

Requests (`Job`) wait in a bounded queue; the engine thread admits them into the running
`batching.Batch` as soon as it has room for all their choices, so requests that arrive
while others decode join at the next step. Every step samples a token for each row and
turns it into text (`sampling.TextStream`: whole UTF-8 characters, stop strings held back
until decided). A choice leaves the batch the moment it is finished (a stop string, the
end-of-text token, or its length), and every row of a request leaves at the next step
once the request is cancelled: nothing computes for a client that has gone.

What the engine tells a request, it tells through the job's `emit` callback, from the
engine thread: `Text` pieces, one `Finished` per choice, or `Failed`. The caller decides
how to hand them over (the server posts them to its event loop).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch

from mygpt.batching import Batch, Row, RowSettings
from mygpt.model import GPT
from mygpt.sampling import TextStream
from mygpt.tokenizer import Tokenizer


@dataclass(frozen=True)
class Text:
    choice: int
    text: str


@dataclass(frozen=True)
class Finished:
    choice: int
    reason: str  # "stop" (a stop string or the end-of-text token) or "length"
    tokens: int  # tokens sampled for this choice


@dataclass(frozen=True)
class Failed:
    message: str
    retryable: bool = False  # the server is stopping: the same request may succeed later, elsewhere


SHUTTING_DOWN = "the server is shutting down"


Event = Union[Text, Finished, Failed]


class QueueFull(Exception):
    """The engine has as many requests waiting as it may queue."""


@dataclass(eq=False)
class Job:
    """One request: a prompt and one `RowSettings` per choice, all with the same length
    limit and stop strings. `emit` is called from the engine thread."""

    prompt: list[int]
    choices: Sequence[RowSettings]
    max_new_tokens: int
    stop: Sequence[str]
    emit: Callable[[Event], None]
    cancelled: bool = False

    def cancel(self) -> None:
        """Nobody waits for the rest: its rows leave the batch at the next step."""
        self.cancelled = True


@dataclass(eq=False)
class _Choice:
    job: Job
    index: int
    text: TextStream
    done: bool = field(default=False)


class Engine:
    def __init__(self, model: GPT, tokenizer: Tokenizer, device: torch.device, max_batch: int, max_queue: int):
        self.batch = Batch(model, max_batch, device)
        self.tokenizer, self.max_queue = tokenizer, max_queue
        self.eot_id = tokenizer.eot_id
        self._queue: deque[Job] = deque()
        self._wake = threading.Condition()
        self._closing = self._refusing = False
        self._admitting = 0  # jobs taken from the queue and not yet in the batch
        self.tokens = 0
        self._thread = threading.Thread(target=self._run, name="mygpt-decode", daemon=True)

    def start(self) -> Engine:
        self._thread.start()
        return self

    def submit(self, job: Job) -> None:
        """Queue a job. Raises QueueFull when the queue is full, ValueError if it has more
        choices than the batch has rows, RuntimeError once the engine is closing."""
        if len(job.choices) > self.batch.capacity:
            raise ValueError(f"{len(job.choices)} choices, but at most {self.batch.capacity} rows decode together")
        with self._wake:
            if self._closing or self._refusing:
                raise RuntimeError(SHUTTING_DOWN)
            waiting, free = self._waiting()
            if (waiting or len(job.choices) > free) and waiting >= self.max_queue:
                raise QueueFull(f"{waiting} requests are waiting already")
            self._queue.append(job)
            self._wake.notify()

    def _waiting(self) -> tuple[int, int]:
        """Queued jobs the free rows will not take at the next step, and the rows left free.
        A job waits for rows for all its choices, and the jobs behind it wait with it
        (first come, first served)."""
        free, waiting = self.batch.free, 0
        for queued in self._queue:
            if not waiting and len(queued.choices) <= free:
                free -= len(queued.choices)
            else:
                waiting += 1
        return waiting, free

    def refuse_new(self) -> None:
        """From now on `submit` refuses (the server is stopping); jobs already in go on."""
        with self._wake:
            self._refusing = True

    @property
    def idle(self) -> bool:
        with self._wake:
            return not self._queue and not self._admitting and not self.batch.rows

    def load(self) -> dict[str, int]:
        """Rows decoding now, requests waiting and tokens sampled since the start: for /health."""
        return {"rows": len(self.batch.rows), "max_batch": self.batch.capacity, "queued": len(self._queue),
                "tokens": self.tokens}  # fmt: skip

    def close(self, timeout: Optional[float] = 10.0) -> None:
        """Stop decoding: every job still waiting or running gets `Failed`."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._closing and not self._queue and not self.batch.rows:
                        self._wake.wait()
                    if self._closing:
                        break
                    admitted = self._take_admissible()
                    self._admitting = len(admitted)
                for job in admitted:
                    self._admit(job)
                with self._wake:
                    self._admitting = 0
                if self.batch.rows:
                    self._step()
        finally:  # closing, or a failure of the engine itself: no job is left waiting for ever
            with self._wake:
                self._closing = True
            self._fail_all(SHUTTING_DOWN)

    def _take_admissible(self) -> list[Job]:
        """Jobs from the front of the queue whose choices all fit in the free rows."""
        taken, free = [], self.batch.free
        while self._queue and (self._queue[0].cancelled or len(self._queue[0].choices) <= free):
            job = self._queue.popleft()
            if not job.cancelled:
                taken.append(job)
                free -= len(job.choices)
        return taken

    def _admit(self, job: Job) -> None:
        owners = [_Choice(job, i, TextStream(self.tokenizer, job.stop)) for i in range(len(job.choices))]
        try:
            rows = self.batch.add(owners[0], job.prompt, job.choices)
        except Exception as exc:  # e.g. out of memory for a long prompt: this request fails, the rest go on
            _send(job, Failed(f"the prompt could not be run: {exc}"))
            return
        for row, owner in zip(rows, owners, strict=True):
            row.owner = owner

    def _step(self) -> None:
        self.batch.remove([r for r in self.batch.rows if r.owner.job.cancelled])
        if not self.batch.rows:
            return
        try:
            ids = self.batch.sample()
            self.tokens += len(ids)
            finished = [row for row, token in zip(self.batch.rows, ids, strict=True) if self._took(row, token)]
            self.batch.remove(finished)
            if self.batch.rows:
                self.batch.feed()
        except Exception as exc:  # nothing a request sent should get here; if it does, no row is left half-done
            self._fail_rows(f"decoding failed: {exc}")

    def _took(self, row: Row, token: int) -> bool:
        """`_take`, and a request whose text cannot be made fails alone."""
        try:
            return self._take(row, token)
        except Exception as exc:
            row.owner.job.cancel()
            _send(row.owner.job, Failed(f"the text could not be decoded: {exc}"))
            return True

    def _take(self, row: Row, token: int) -> bool:
        """Turn a row's new token into text for its request; True when the choice is finished."""
        choice: _Choice = row.owner
        if token == self.eot_id:  # the end of a document: this choice is complete
            self._finish(choice, "stop", len(row.tokens))
            return True
        piece = choice.text.push([token])
        if piece:
            _send(choice.job, Text(choice.index, piece))
        if choice.text.stopped:
            self._finish(choice, "stop", len(row.tokens))
        elif len(row.tokens) >= choice.job.max_new_tokens:
            self._finish(choice, "length", len(row.tokens))
        return choice.done

    def _finish(self, choice: _Choice, reason: str, tokens: int) -> None:
        rest = choice.text.finish()
        if rest:
            _send(choice.job, Text(choice.index, rest))
        choice.done = True
        _send(choice.job, Finished(choice.index, reason, tokens))

    def _fail_rows(self, message: str) -> None:
        jobs = {id(r.owner.job): r.owner.job for r in self.batch.rows}
        self.batch.remove(list(self.batch.rows))
        for job in jobs.values():
            _send(job, Failed(message, retryable=message == SHUTTING_DOWN))

    def _fail_all(self, message: str) -> None:
        self._fail_rows(message)
        with self._wake:
            waiting, self._queue = list(self._queue), deque()
        for job in waiting:
            _send(job, Failed(message, retryable=message == SHUTTING_DOWN))


def _send(job: Job, event: Event) -> None:
    """Hand an event to its job; a job whose `emit` fails is cancelled, and only it."""
    try:
        job.emit(event)
    except Exception:
        job.cancel()
