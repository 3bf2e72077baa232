"""`mygpt serve`: OpenAI's HTTP API and a chat page over one model, decoded in batches.

Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (streamed as
server-sent events when asked), GET /health, GET / (the chat page, mygpt/static/chat.html).
Each request is validated (mygpt/api_schema.py), tokenized off the event loop, and handed
to the `engine.Engine`, whose thread decodes every request's rows together; its events
come back to the request's coroutine through an asyncio queue. A client that disconnects
cancels its job. Errors are OpenAI's error object: 400 invalid field, 401 key, 404 model
or route, 413 body too large, 503 queue full (with Retry-After).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from mygpt import api_schema as api
from mygpt.api_schema import FieldError
from mygpt.batching import RowSettings
from mygpt.chat import prompt_from_messages
from mygpt.config import ServeConfig
from mygpt.engine import Engine, Failed, Finished, Job, QueueFull, Text
from mygpt.errors import MyGPTError
from mygpt.sampling import prompt_ids, resolve_seed
from mygpt.tokenizer import Tokenizer

GRACE_SECONDS = 5  # on Ctrl-C, requests in flight may finish for this long, then are cancelled


@dataclass
class Served:
    """What the routes serve: the model's id, its tokenizer and context, the engine, the limits."""

    model_id: str
    tokenizer: Tokenizer
    block_size: int
    engine: Engine
    cfg: ServeConfig


class _BodyTooLarge(Exception):
    pass


def _error(status: int, message: str, kind: str = "invalid_request_error", param: Optional[str] = None,
           code: Optional[str] = None, headers: Optional[dict[str, str]] = None) -> JSONResponse:  # fmt: skip
    return JSONResponse(api.error_body(message, kind, param, code), status_code=status, headers=headers)


def create_app(served: Served) -> FastAPI:
    app = FastAPI(title="mygpt", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_Guard, served=served)
    page = (resources.files("mygpt") / "static" / "chat.html").read_text(encoding="utf-8")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        message = f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
        return _error(exc.status_code, message, code=code)

    @app.get("/", response_class=HTMLResponse)
    async def _page() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def _health() -> dict[str, Any]:
        return {"status": "ok", "model": served.model_id, **served.engine.load()}

    @app.get("/v1/models")
    async def _models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(served)]}

    @app.get("/v1/models/{model_id:path}")
    async def _model(model_id: str) -> Any:
        if model_id != served.model_id:
            return _unknown_model(model_id)
        return _model_card(served)

    @app.post("/v1/completions")
    async def _completions(request: Request) -> Response:
        return await _handle(served, request, chat=False)

    @app.post("/v1/chat/completions")
    async def _chat(request: Request) -> Response:
        return await _handle(served, request, chat=True)

    return app


class _Guard:
    """Before any route: refuse a body declared over the limit (413) and, when the server
    has a key, any /v1 request without it (401). Plain ASGI, so streams pass untouched."""

    def __init__(self, app: Any, served: Served):
        self.app, self.served = app, served

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                return await refusal(scope, receive, send)
        await self.app(scope, receive, send)

    def refusal(self, scope: dict[str, Any]) -> Optional[JSONResponse]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        limit = self.served.cfg.max_body
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return _too_large(limit)
        key = self.served.cfg.api_key
        if key and scope["path"].startswith("/v1"):
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if not given:
                return _error(401, "this server needs an API key: send 'Authorization: Bearer KEY'", code="invalid_api_key")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("latin-1"), key.encode()):
                return _error(401, "incorrect API key", code="invalid_api_key")
        return None


def _model_card(served: Served) -> dict[str, Any]:
    return {"id": served.model_id, "object": "model", "created": 0, "owned_by": "mygpt",
            "context_length": served.block_size}  # fmt: skip


def _unknown_model(name: str) -> JSONResponse:
    return _error(404, f"model {name!r} is not served here; GET /v1/models lists it", param="model", code="model_not_found")


def _too_large(limit: int) -> JSONResponse:
    return _error(413, f"the request body is larger than this server's limit of {limit:,} bytes (--max-body)")


async def _read_json(request: Request, limit: int) -> Any:
    """The body as JSON, read a piece at a time so a body without a Content-Length is bounded too."""
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise _BodyTooLarge()
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise FieldError(None, "the body is not valid JSON") from None


async def _handle(served: Served, request: Request, chat: bool) -> Response:
    try:
        body = await _read_json(request, served.cfg.max_body)
        req = api.parse(api.ChatRequest if chat else api.CompletionRequest, body)
        if req.model is not None and req.model != served.model_id:
            return _unknown_model(req.model)
        job_fields = _job_fields(served, req, chat)
        ids = await asyncio.to_thread(_prompt, served, req, chat)
    except _BodyTooLarge:
        return _too_large(served.cfg.max_body)
    except FieldError as exc:
        return _error(400, str(exc), param=exc.param)
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()

    def emit(event: Any) -> None:  # called from the engine's thread
        try:
            loop.call_soon_threadsafe(events.put_nowait, event)
        except RuntimeError:  # the event loop has closed (the server stopped): nobody will read it
            job.cancel()

    job = Job(ids, emit=emit, **job_fields)
    try:
        served.engine.submit(job)
    except QueueFull:
        return _error(503, "the server is busy: every row is decoding and the queue is full; retry shortly",
                      kind="server_error", code="queue_full", headers={"Retry-After": "1"})  # fmt: skip
    except RuntimeError as exc:
        return _error(503, str(exc), kind="server_error", headers={"Retry-After": "5"})
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
            whole = sum(len(tokenizer.encode(text)) for _, text in messages)
            if whole > limit:
                raise FieldError("messages", f"the conversation is {whole:,} tokens; this server takes at most {limit:,}")
            return prompt_from_messages(messages, tokenizer, served.block_size, served.cfg)
        ids = prompt_ids(tokenizer, req.text())
    except MyGPTError as exc:  # a character the vocabulary does not have, a conversation that ends wrong
        raise FieldError("messages" if chat else "prompt", str(exc)) from None
    if len(ids) > limit:
        raise FieldError("prompt", f"the prompt is {len(ids):,} tokens; this server takes at most {limit:,}")
    return ids


def _job_fields(served: Served, req: Any, chat: bool) -> dict[str, Any]:
    """The job's settings: the request's fields, else the server's defaults, within its limits."""
    cfg = served.cfg
    max_tokens = req.limit() if req.limit() is not None else cfg.max_new_tokens
    if max_tokens > cfg.max_tokens_limit:
        raise FieldError("max_tokens", f"max_tokens={max_tokens} is above this server's limit of {cfg.max_tokens_limit}")
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


async def _events(job: Job, events: asyncio.Queue) -> AsyncIterator[Any]:
    """The job's events until every choice has finished; cancels the job if abandoned."""
    finished = 0
    try:
        while finished < len(job.choices):
            event = await events.get()
            yield event
            if isinstance(event, Failed):
                return
            finished += isinstance(event, Finished)
    finally:
        if finished < len(job.choices):
            job.cancel()


async def _stream(job: Job, events: asyncio.Queue, reply: _Reply, include_usage: bool) -> AsyncIterator[str]:
    completion_tokens = 0
    if reply.chat:  # the role comes first, as OpenAI sends it
        for i in range(reply.n):
            yield _sse(api.chat_chunk(reply.rid, reply.model_id, i, {"role": "assistant", "content": ""}, None))
    async for event in _events(job, events):
        if isinstance(event, Failed):
            yield _sse(api.error_body(event.message, "server_error"))
            return
        text, reason = (event.text, None) if isinstance(event, Text) else ("", event.reason)
        completion_tokens += event.tokens if isinstance(event, Finished) else 0
        if reply.chat:
            yield _sse(api.chat_chunk(reply.rid, reply.model_id, event.choice, {"content": text} if text else {}, reason))
        else:
            yield _sse(api.completion_chunk(reply.rid, reply.model_id, event.choice, text, reason))
    if include_usage:
        yield _sse(api.usage_chunk(reply.rid, reply.model_id, reply.chat, api.usage(reply.prompt_tokens, completion_tokens)))
    yield "data: [DONE]\n\n"


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def _collect(job: Job, events: asyncio.Queue, reply: _Reply, request: Request) -> Response:
    """The whole answer; the job is cancelled if the client goes away first."""
    texts, reasons, tokens = [""] * reply.n, ["length"] * reply.n, 0

    async def gather() -> Optional[str]:
        nonlocal tokens
        async for event in _events(job, events):
            if isinstance(event, Failed):
                return event.message
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
        return _error(503 if "shutting down" in failure else 500, failure, kind="server_error")
    make = api.chat_completion if reply.chat else api.completion
    return JSONResponse(make(reply.rid, reply.model_id, texts, reasons, api.usage(reply.prompt_tokens, tokens)))


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def listen(host: str, port: int) -> socket.socket:
    """A listening socket; raises MyGPTError naming the address when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise MyGPTError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def http_server(served: Served, debug: bool = False) -> Any:
    """The uvicorn server for the app (not started): `.run(sockets=[sock])` serves.

    On Ctrl-C or SIGTERM it stops taking requests, lets those in flight run for up to
    GRACE_SECONDS (a second Ctrl-C cuts that short), then ends the rest with an error
    event, so every response is complete before the server closes its connections."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Optional[list[socket.socket]] = None) -> None:
            served.engine.refuse_new()
            deadline = asyncio.get_running_loop().time() + GRACE_SECONDS
            while not served.engine.idle and not self.force_exit and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(served.engine.close)
            await super().shutdown(sockets)

    # uvicorn logs a request it had to cancel with a traceback: our own errors reach the
    # client as error objects, so its log shows only with --debug.
    config = uvicorn.Config(create_app(served), log_level="info" if debug else "critical", access_log=debug,
                            timeout_graceful_shutdown=GRACE_SECONDS, lifespan="off")  # fmt: skip
    return Server(config)


def run(served: Served, sock: socket.socket, debug: bool = False) -> None:
    """Serve until Ctrl-C or SIGTERM (see `http_server`); the signal is then raised again
    (KeyboardInterrupt for Ctrl-C)."""
    try:
        http_server(served, debug).run(sockets=[sock])
    finally:
        served.engine.close()


def load(cfg: ServeConfig, path: Path) -> Served:
    """Load the checkpoint onto the device and start the engine that will decode for it."""
    from mygpt import checkpoint, device as devices

    device = devices.resolve(cfg.device)
    loaded = checkpoint.load(path, device=str(device))
    engine = Engine(loaded.model, loaded.tokenizer, device, cfg.max_batch, cfg.max_queue).start()
    return Served(model_id(path), loaded.tokenizer, loaded.model.config.block_size, engine, cfg)


def model_id(path: Path) -> str:
    """A checkpoint's id in the API: its file name without .safetensors."""
    return path.name.removesuffix(".safetensors")
