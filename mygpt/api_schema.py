"""The shapes of OpenAI's API that `mygpt serve` speaks: request bodies in, response bodies out.

Requests are validated here (types and ranges; `FieldError` names the field at fault);
limits that depend on the server (max_tokens, n, prompt length) are checked by the server.
Clients send fields this server does not use (`user`, `stream_options`, ...): those are
ignored, except ones that would change the answer (`logprobs`, penalties, `tools`, ...),
which are refused rather than silently dropped.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Fields of OpenAI's API whose meaning this server cannot honour, with the value that means "not used".
UNSUPPORTED = {"logprobs": (None, False, 0), "top_logprobs": (None, 0), "echo": (None, False), "suffix": (None, ""),
               "presence_penalty": (None, 0), "frequency_penalty": (None, 0), "logit_bias": (None, {}),
               "tools": (None, []), "functions": (None, []), "tool_choice": (None, "none"), "best_of": (None, 1),
               "response_format": (None, {"type": "text"}), "modalities": (None, ["text"]), "audio": (None,),
               "prediction": (None,), "reasoning_effort": (None,)}  # fmt: skip
# Request bodies are JSON: a "5" is not a number nor 1 a boolean, as OpenAI's API has it.
_STRICT = ConfigDict(strict=True, extra="allow")
# Pydantic's error locations name the member of a union that failed ("prompt", "str"): not a field.
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|list|dict|none)$|\[")
MAX_STOPS = 4  # as OpenAI allows
MAX_STOP_CHARS = 256  # text that may begin a stop string is held back and searched at every token


class FieldError(ValueError):
    """A request field that cannot be used: `param` names it (OpenAI's error object carries it)."""

    def __init__(self, param: Optional[str], message: str):
        super().__init__(message)
        self.param = param


class StreamOptions(BaseModel):
    model_config = _STRICT

    include_usage: bool = False


class _Sampling(BaseModel):
    model_config = _STRICT

    model: Optional[str] = None
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(None, ge=0.0, le=1.0, description="0 keeps only the most likely token.")
    top_k: Optional[int] = Field(
        None, ge=0, description="An extension: sample among the k most likely tokens; 0 is off."
    )
    stop: Optional[Union[str, list[str]]] = None
    seed: Optional[int] = Field(None, ge=0, le=2**63 - 1)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None

    @field_validator("n", "stream", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        return cls.model_fields[info.field_name].default if value is None else value

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or ())
        if len(stops) > MAX_STOPS:
            raise FieldError("stop", f"at most {MAX_STOPS} stop strings, got {len(stops)}")
        if any(len(s) > MAX_STOP_CHARS for s in stops):
            raise FieldError("stop", f"a stop string may be {MAX_STOP_CHARS} characters at most")
        return tuple(s for s in stops if s)

    def limit(self) -> Optional[int]:
        """The number of tokens asked for, if any."""
        return self.max_tokens


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str]]

    def text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise FieldError("prompt", f"one prompt per request, got a list of {len(self.prompt)}")
        return self.prompt[0]


class TextPart(BaseModel):
    model_config = _STRICT

    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = _STRICT

    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart]]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1, max_length=10_000)
    max_completion_tokens: Optional[int] = Field(None, ge=1)

    def limit(self) -> Optional[int]:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


def parse(kind: type[_Sampling], body: Any) -> Any:
    """A validated request, or FieldError naming the first field at fault and why."""
    if not isinstance(body, dict):
        raise FieldError(None, "the body must be a JSON object")
    try:
        request = kind.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        parts = [str(p) for p in error["loc"] if isinstance(p, int) or not _UNION_MEMBER.search(p)]
        param = ".".join(parts) or None
        raise FieldError(param, f"{param}: {error['msg']}" if param else error["msg"]) from None
    for name, unused in UNSUPPORTED.items():
        if body.get(name, None) not in unused:
            raise FieldError(name, f"{name} is not supported by this server")
    return request


def error_body(message: str, kind: str = "invalid_request_error", param: Optional[str] = None,
               code: Optional[str] = None) -> dict[str, Any]:  # fmt: skip
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip


def completion(rid: str, model: str, texts: list[str], reasons: list[str], use: dict[str, int]) -> dict[str, Any]:
    choices = [
        {"index": i, "text": t, "logprobs": None, "finish_reason": r}
        for i, (t, r) in enumerate(zip(texts, reasons, strict=False))
    ]
    return {"id": rid, "object": "text_completion", "created": now(), "model": model, "choices": choices, "usage": use}


def chat_completion(rid: str, model: str, texts: list[str], reasons: list[str], use: dict[str, int]) -> dict[str, Any]:
    choices = [{"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None, "finish_reason": r}
               for i, (t, r) in enumerate(zip(texts, reasons, strict=False))]  # fmt: skip
    return {"id": rid, "object": "chat.completion", "created": now(), "model": model, "choices": choices, "usage": use}


def completion_chunk(rid: str, model: str, index: int, text: str, reason: Optional[str]) -> dict[str, Any]:
    choice = {"index": index, "text": text, "logprobs": None, "finish_reason": reason}
    return {"id": rid, "object": "text_completion", "created": now(), "model": model, "choices": [choice]}


def chat_chunk(rid: str, model: str, index: int, delta: dict[str, str], reason: Optional[str]) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
    return {"id": rid, "object": "chat.completion.chunk", "created": now(), "model": model, "choices": [choice]}


def usage_chunk(rid: str, model: str, chat: bool, use: dict[str, int]) -> dict[str, Any]:
    """The last chunk of a stream that asked for usage (stream_options.include_usage)."""
    kind = "chat.completion.chunk" if chat else "text_completion"
    return {"id": rid, "object": kind, "created": now(), "model": model, "choices": [], "usage": use}
