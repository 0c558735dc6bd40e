"""The one interface every engine adapter implements, and the OpenAI response shapes adapters build."""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from config.local_section import EngineSpec
from local.protocol import ChatCompletionRequest, CompletionRequest

SSE_DONE = b"data: [DONE]\n\n"


@dataclass
class Call:
    """One validated request on its way to an engine."""

    kind: Literal["chat", "completion"]
    model: str
    request: ChatCompletionRequest | CompletionRequest
    body: dict[str, Any]
    raw: bytes
    max_tokens: int
    schema: dict[str, Any] | None = None
    # Set by the structured-output retry loop: ask the engine again with the validation error appended.
    extra_messages: list[dict[str, str]] = field(default_factory=list)
    # Filled in by a stream as it goes, for the token metrics (exact when the engine reports usage).
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def stream(self) -> bool:
        return self.request.stream


@dataclass
class Result:
    """A whole (non-streamed) answer: the OpenAI JSON to return, plus what metrics and validation need."""

    body: bytes
    text: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Engine(ABC):
    """An engine adapter. ``complete`` and ``stream`` raise ``EngineError`` for failures the router may fail over
    (before a stream's first chunk) and ``UpstreamRejected`` for the engine's 4xx answers."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.name = spec.name

    @property
    def enforces_schema(self) -> bool:
        return self.spec.enforces_schema

    async def start(self) -> None:  # noqa: B027 - optional hook, most adapters need it
        """Open connections / load the model."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections / the model."""

    @abstractmethod
    async def ready(self) -> bool:
        """Is the engine reachable and able to serve now?"""

    @abstractmethod
    async def complete(self, call: Call) -> Result:
        """Answer a non-streaming request."""

    @abstractmethod
    def stream(self, call: Call) -> AsyncIterator[bytes]:
        """Yield SSE bytes (``data: {...}\\n\\n`` events, ending with ``data: [DONE]``)."""


def new_id(kind: str) -> str:
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def full_response(
    kind: str, model: str, text: str, finish: str | None, prompt: int, completion: int, rid: str | None = None
) -> bytes:
    """An OpenAI ``chat.completion`` / ``text_completion`` body."""
    rid = rid or new_id(kind)
    if kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish or "stop",
            "logprobs": None,
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish or "stop", "logprobs": None}
        obj = "text_completion"
    return orjson.dumps(
        {
            "id": rid,
            "object": obj,
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage(prompt, completion),
        }
    )


def sse_chunk(
    kind: str,
    rid: str,
    model: str,
    text: str | None,
    finish: str | None = None,
    first: bool = False,
    usage_: dict[str, int] | None = None,
) -> bytes:
    """One SSE event carrying an OpenAI ``chat.completion.chunk`` / ``text_completion`` chunk."""
    choices: list[dict[str, Any]]
    if text is None and finish is None:
        choices = []
    elif kind == "chat":
        delta: dict[str, Any] = {"content": text or ""} if text is not None else {}
        if first:
            delta["role"] = "assistant"
        choices = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    else:
        choices = [{"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}]
    obj: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage_ is not None:
        obj["usage"] = usage_
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def sse_error(message: str, type_: str = "upstream_error", code: str | None = None) -> bytes:
    """The event a stream ends with when its engine fails after the first byte (no failover is possible then)."""
    return (
        b"data: " + orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}) + b"\n\n"
    )


def chat_messages(call: Call) -> list[dict[str, str]]:
    """Chat messages as plain role/content dicts, plus any retry feedback."""
    assert isinstance(call.request, ChatCompletionRequest)
    msgs = [{"role": m.role, "content": m.text()} for m in call.request.messages]
    return msgs + call.extra_messages
