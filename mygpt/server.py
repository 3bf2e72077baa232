"""`mygpt serve`: OpenAI's HTTP API and a chat page over one model, decoded in batches.

Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (streamed as
server-sent events when asked), GET /health, GET / (the chat page, mygpt/static/chat.html).
A request's life is mygpt/api_requests.py; the `engine.Engine`'s thread decodes every
request's rows together. Here: the app and its routes, the guard in front of them (body
size, API key, content type), listening, and stopping. Errors are OpenAI's error object:
400 invalid field, 401 key, 404 model or route, 405 method, 408 body too slow, 413 body
too large, 415 not JSON, 503 queue full or stopping (with Retry-After).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import socket
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from mygpt.api_requests import Served, error, handle, too_large, unknown_model
from mygpt.config import ServeConfig
from mygpt.engine import Engine
from mygpt.errors import MyGPTError

GRACE_SECONDS = 5  # on Ctrl-C, requests in flight may finish for this long, then are cancelled


def create_app(served: Served) -> FastAPI:
    app = FastAPI(title="mygpt", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_Guard, served=served)
    page = (resources.files("mygpt") / "static" / "chat.html").read_text(encoding="utf-8")

    app.router.redirect_slashes = False  # a redirect would be built from the client's Host header

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            return error(404, f"no route {where}", code="not_found")
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return error(405, f"{where} is not allowed; this route takes {allowed}", code="method_not_allowed",
                         headers={"Allow": allowed})  # fmt: skip
        return error(exc.status_code, str(exc.detail))

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
            return unknown_model(model_id)
        return _model_card(served)

    @app.post("/v1/completions")
    async def _completions(request: Request) -> Response:
        return await handle(served, request, chat=False)

    @app.post("/v1/chat/completions")
    async def _chat(request: Request) -> Response:
        return await handle(served, request, chat=True)

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
        if length is not None and not length.isdigit():
            return error(400, f"Content-Length {length!r} is not a number of bytes")
        if length is not None and int(length) > limit:
            return too_large(limit)
        key = self.served.cfg.api_key
        if key and scope["path"].startswith("/v1"):
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if not given:
                return error(
                    401, "this server needs an API key: send 'Authorization: Bearer KEY'", code="invalid_api_key"
                )
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("latin-1"), key.encode()):
                return error(401, "incorrect API key", code="invalid_api_key")
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["method"] == "POST" and media != "application/json":
            # Only JSON is read; refusing other types also keeps a web page's plain form or
            # text/plain post (which a browser sends to any address without asking) out.
            return error(415, f"send the body as JSON with 'Content-Type: application/json' (not {media or 'none'!r})")
        return None


def _model_card(served: Served) -> dict[str, Any]:
    return {"id": served.model_id, "object": "model", "created": 0, "owned_by": "mygpt",
            "context_length": served.block_size}  # fmt: skip


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
    # uvicorn has no timeout for a request's headers: a bound on connections keeps clients
    # that never finish theirs from holding a file descriptor each without end.
    connections = max(256, 4 * (served.cfg.max_batch + served.cfg.max_queue))
    config = uvicorn.Config(create_app(served), log_level="info" if debug else "critical", access_log=debug,
                            timeout_graceful_shutdown=1, lifespan="off", limit_concurrency=connections)  # fmt: skip
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
    if device.type == "cpu":
        _leave_a_core()
    loaded = checkpoint.load(path, device=str(device))
    engine = Engine(loaded.model, loaded.tokenizer, device, cfg.max_batch, cfg.max_queue).start()
    return Served(model_id(path), loaded.tokenizer, loaded.model.config.block_size, engine, cfg)


def _leave_a_core() -> None:
    """Decode on all cores but one. The event loop answering clients needs a core too: when
    torch's threads take them all, each step waits for whichever thread lost its core to the
    loop (measured on 2 cores: 1 thread gave 1.5-2.5x the tokens/s of 2, at 1 and 8 clients)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(max(1, min(torch.get_num_threads(), cores - 1)))


def model_id(path: Path) -> str:
    """A checkpoint's id in the API: its file name without .safetensors."""
    return path.name.removesuffix(".safetensors")
