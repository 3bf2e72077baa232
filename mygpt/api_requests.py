"""One API request's life in `mygpt serve`: read and validated, tokenized, queued, answered.

`handle` reads the body (bounded by --max-body even without a Content-Length), parses it
(mygpt/api_schema.py), fills what the request left out from the server's defaults and
checks its limits, tokenizes the prompt off the event loop, and submits an
`engine.Job`. The engine's events come back through an asyncio queue, and become either
server-sent events (a chunk per piece of text, then [DONE]) or one JSON answer. A client
that goes away cancels its job: its rows leave the batch at the next step.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from dataclasses import dataclass
from typing import Any, AsyncIterator, Optional

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from mygpt import api_schema as api
from mygpt.api_schema import FieldError
from mygpt.batching import RowSettings
from mygpt.chat import prompt_from_messages
from mygpt.config import ServeConfig
from mygpt.engine import Engine, Failed, Finished, Job, QueueFull, Text
from mygpt.errors import MyGPTError
from mygpt.sampling import prompt_ids, resolve_seed
from mygpt.tokenizer import Tokenizer


@dataclass
class Served:
    """What the routes serve: the model's id, its tokenizer and context, the engine, the limits."""

    model_id: str
    tokenizer: Tokenizer
    block_size: int
    engine: Engine
    cfg: ServeConfig


BODY_SECONDS = 30  # the longest a request body may take to arrive


class _BodyTooLarge(Exception):
    pass


class _BodyTooSlow(Exception):
    pass


def error(status: int, message: str, kind: str = "invalid_request_error", param: Optional[str] = None,
          code: Optional[str] = None, headers: Optional[dict[str, str]] = None) -> JSONResponse:  # fmt: skip
    return JSONResponse(api.error_body(message, kind, param, code), status_code=status, headers=headers)


def unknown_model(name: str) -> JSONResponse:
    return error(
        404, f"model {name!r} is not served here; GET /v1/models lists it", param="model", code="model_not_found"
    )


def too_large(limit: int) -> JSONResponse:
    return error(413, f"the request body is larger than this server's limit of {limit:,} bytes (--max-body)")


async def _read_json(request: Request, limit: int) -> Any:
    """The body as JSON, read a piece at a time so a body without a Content-Length is bounded
    too, and within BODY_SECONDS, so a client sending a byte now and then holds nothing long."""
    body = bytearray()

    async def read() -> None:
        try:
            async for piece in request.stream():
                body.extend(piece)
                if len(body) > limit:
                    raise _BodyTooLarge()
        except ClientDisconnect:  # the client left (or the server is stopping) before its body came
            raise _BodyTooSlow() from None

    try:
        await asyncio.wait_for(read(), BODY_SECONDS)
    except asyncio.TimeoutError:
        raise _BodyTooSlow() from None
    try:
        return json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise FieldError(None, "the body is not valid JSON") from None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json module reads NaN and Infinity; JSON has neither


async def handle(served: Served, request: Request, chat: bool) -> Response:
    """Answer one completion (chat=False) or chat completion request."""
    try:
        body = await _read_json(request, served.cfg.max_body)
        req = api.parse(api.ChatRequest if chat else api.CompletionRequest, body)
        if req.model is not None and req.model != served.model_id:
            return unknown_model(req.model)
        job_fields = _job_fields(served, req, chat)
        ids = await asyncio.to_thread(_prompt, served, req, chat)
    except _BodyTooLarge:
        return too_large(served.cfg.max_body)
    except _BodyTooSlow:
        return error(408, f"the request body did not arrive within {BODY_SECONDS} s")
    except FieldError as exc:
        return error(400, str(exc), param=exc.param)
    events: asyncio.Queue = asyncio.Queue()
    mailbox = _Mailbox.of(asyncio.get_running_loop())
    job = Job(ids, emit=lambda event: mailbox.post(events, event, job), **job_fields)
    try:
        served.engine.submit(job)
    except QueueFull:
        return error(503, "the server is busy: every row is decoding and the queue is full; retry shortly",
                      kind="server_error", code="queue_full", headers={"Retry-After": "1"})  # fmt: skip
    except RuntimeError as exc:
        return error(503, str(exc), kind="server_error", headers={"Retry-After": "5"})
    reply = _Reply(served.model_id, chat, len(ids), len(job.choices), api.new_id("chatcmpl" if chat else "cmpl"))
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(_stream(job, events, reply, include_usage), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip
    return await _collect(job, events, reply, request)


def _prompt(served: Served, req: Any, chat: bool) -> list[int]:
    """The request's prompt ids (tokenizing may take a while: not on the event loop)."""
    tokenizer, limit = served.tokenizer, served.cfg.max_prompt_tokens
    try:
        if chat:
            messages = [(m.role, m.text()) for m in req.messages]
            return prompt_from_messages(messages, tokenizer, served.block_size, served.cfg, limit)
        ids = prompt_ids(tokenizer, req.text())
    except MyGPTError as exc:  # a character the vocabulary does not have, a conversation that ends wrong
        raise FieldError("messages" if chat else "prompt", str(exc)) from None
    if len(ids) > limit:
        raise FieldError("prompt", f"the prompt is {len(ids):,} tokens; this server takes at most {limit:,}")
    return ids


def _job_fields(served: Served, req: Any, chat: bool) -> dict[str, Any]:
    """The job's settings: the request's fields, else the server's defaults, within its limits."""
    cfg = served.cfg
    for field in ("max_tokens", "max_completion_tokens"):
        asked = getattr(req, field, None)
        if asked is not None and asked > cfg.max_tokens_limit:
            raise FieldError(field, f"{field}={asked} is above this server's limit of {cfg.max_tokens_limit}")
    max_tokens = req.limit() if req.limit() is not None else cfg.max_new_tokens
    if req.n > cfg.max_batch:
        raise FieldError("n", f"n={req.n}: this server decodes at most {cfg.max_batch} rows together (--max-batch)")
    top_k = cfg.top_k if req.top_k is None else (req.top_k or None)
    seed = resolve_seed(req.seed if req.seed is not None else cfg.seed)
    temperature = cfg.temperature if req.temperature is None else req.temperature
    top_p = cfg.top_p if req.top_p is None else req.top_p
    choices = [RowSettings(temperature, top_k, top_p, (seed + i) % 2**63) for i in range(req.n)]
    stops = (cfg.stop if chat else ()) + req.stops()
    return {"choices": choices, "max_new_tokens": max_tokens, "stop": stops}


@dataclass
class _Reply:
    model_id: str
    chat: bool
    prompt_tokens: int
    n: int
    rid: str


class _Mailbox:
    """Carries the engine thread's events to the event loop's queues, waking the loop once
    for all that arrive together (one step of a batch gives an event per row), not per event."""

    _boxes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.lock = loop, threading.Lock()
        self.pending: list[tuple[asyncio.Queue, Any]] = []

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Mailbox:
        if loop not in cls._boxes:
            cls._boxes[loop] = cls(loop)
        return cls._boxes[loop]

    def post(self, queue: asyncio.Queue, event: Any, job: Job) -> None:
        """From the engine's thread."""
        with self.lock:
            self.pending.append((queue, event))
            first = len(self.pending) == 1
        if first:
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the event loop has closed (the server stopped): nobody will read it
                job.cancel()

    def _deliver(self) -> None:
        with self.lock:
            arrived, self.pending = self.pending, []
        for queue, event in arrived:
            queue.put_nowait(event)


async def _events(job: Job, events: asyncio.Queue) -> AsyncIterator[list[Any]]:
    """The job's events, all that have arrived at a time, until every choice has finished
    or one failed; cancels the job if the consumer stops early."""
    finished = 0
    try:
        while finished < len(job.choices):
            arrived = [await events.get()]
            while not events.empty():
                arrived.append(events.get_nowait())
            failed = next((i for i, e in enumerate(arrived) if isinstance(e, Failed)), None)
            if failed is not None:
                finished = len(job.choices)  # nothing more will come
                yield arrived[: failed + 1]
                return
            finished += sum(isinstance(e, Finished) for e in arrived)
            yield arrived
    finally:
        if finished < len(job.choices):
            job.cancel()


async def _stream(job: Job, events: asyncio.Queue, reply: _Reply, include_usage: bool) -> AsyncIterator[str]:
    completion_tokens = 0
    if reply.chat:  # the role comes first, as OpenAI sends it
        for i in range(reply.n):
            yield _sse(api.chat_chunk(reply.rid, reply.model_id, i, {"role": "assistant", "content": ""}, None))
    async for arrived in _events(job, events):
        chunks = []  # one write for all that arrived together
        for event in arrived:
            if isinstance(event, Failed):
                yield "".join(chunks) + _sse(api.error_body(event.message, "server_error"))
                return
            text, reason = (event.text, None) if isinstance(event, Text) else ("", event.reason)
            completion_tokens += event.tokens if isinstance(event, Finished) else 0
            if reply.chat:
                delta = {"content": text} if text else {}
                chunks.append(_sse(api.chat_chunk(reply.rid, reply.model_id, event.choice, delta, reason)))
            else:
                chunks.append(_sse(api.completion_chunk(reply.rid, reply.model_id, event.choice, text, reason)))
        yield "".join(chunks)
    if include_usage:
        yield _sse(
            api.usage_chunk(reply.rid, reply.model_id, reply.chat, api.usage(reply.prompt_tokens, completion_tokens))
        )
    yield "data: [DONE]\n\n"


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def _collect(job: Job, events: asyncio.Queue, reply: _Reply, request: Request) -> Response:
    """The whole answer; the job is cancelled if the client goes away first."""
    texts, reasons, tokens = [""] * reply.n, ["length"] * reply.n, 0

    async def gather() -> Optional[Failed]:
        nonlocal tokens
        async for arrived in _events(job, events):
            for event in arrived:
                if isinstance(event, Failed):
                    return event
                if isinstance(event, Text):
                    texts[event.choice] += event.text
                else:
                    reasons[event.choice], tokens = event.reason, tokens + event.tokens
        return None

    answer, gone = asyncio.ensure_future(gather()), asyncio.ensure_future(_disconnected(request))
    await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if not answer.done():  # the client left: stop computing for it
        answer.cancel()
        job.cancel()
        return Response(status_code=499)
    if (failure := answer.result()) is not None:
        return error(503 if failure.retryable else 500, failure.message, kind="server_error")
    make = api.chat_completion if reply.chat else api.completion
    return JSONResponse(make(reply.rid, reply.model_id, texts, reasons, api.usage(reply.prompt_tokens, tokens)))


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
