"""The one interface every engine adapter implements, and the OpenAI bytes adapters send (built by :mod:`wire`,
serialised with orjson on the hot path)."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from config.local_section import EngineSpec
from local.protocol import ChatCompletionRequest, CompletionRequest
from wire import build, sse
from wire.errors import error_dict
from wire.sse import DONE as SSE_DONE
from wire.validate import message_text

__all__ = [
    "SSE_DONE",
    "Call",
    "Engine",
    "Result",
    "chat_messages",
    "dumps",
    "new_id",
    "sse_error",
    "sse_event",
    "usage",
]

new_id = build.new_id
usage = build.usage


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
    # loop.time() by which the whole request must be answered (the router sets it; inf = none).
    deadline: float = float("inf")
    # The adapter asked the engine for a usage chunk the client did not ask for: the router strips it.
    strip_usage: bool = False
    # Set when a stream failed after its first byte: the status it counts as, and why.
    failure_status: int = 0
    failure: str | None = None
    # The model name the answer carries when it differs from ``model`` (the hybrid route's public name).
    public_model: str | None = None

    @property
    def answer_model(self) -> str:
        """The model name the client sees in the answer."""
        return self.public_model or self.model

    @property
    def stream(self) -> bool:
        return self.request.stream

    @property
    def n(self) -> int:
        return self.request.n

    def remaining(self) -> float:
        """Seconds left before the deadline (may be negative)."""
        return self.deadline - asyncio.get_running_loop().time()


@dataclass
class Result:
    """A whole (non-streamed) answer: the OpenAI JSON to return, plus what metrics and validation need."""

    body: bytes
    text: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Engine(ABC):
    """An engine adapter. ``complete`` and ``stream`` raise ``EngineError`` (a subclass naming the cause) for
    failures the router may fail over (before a stream's first byte) and ``UpstreamRejected`` for the engine's 4xx
    answers. A stream that fails later may raise ``EngineError`` too: the router turns it into a final error event
    and counts it."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.name = spec.name

    @property
    def enforces_schema(self) -> bool:
        return self.spec.enforces_schema

    @property
    def supports_n(self) -> bool:
        return self.spec.supports_n

    @property
    def enforces_deadline(self) -> bool:
        """True when the adapter's own I/O stops at ``call.deadline`` (else the router bounds each read)."""
        return False

    async def start(self) -> None:  # noqa: B027 - optional hook, most adapters need it
        """Open connections / load the model."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections / the model."""

    @abstractmethod
    async def ready(self) -> bool:
        """Is the engine reachable and able to serve now?"""

    async def readiness(self) -> tuple[bool, str]:
        """:meth:`ready` with a word on why not (adapters that can say more override it)."""
        ok = await self.ready()
        return ok, "ok" if ok else "not ready"

    def model_info(self) -> dict[str, dict[str, Any]]:
        """Extra ``/v1/models`` fields per public model name (``max_model_len``), as last seen from the engine."""
        return {}

    @abstractmethod
    async def complete(self, call: Call) -> Result:
        """Answer a non-streaming request."""

    @abstractmethod
    def stream(self, call: Call) -> AsyncIterator[bytes]:
        """Yield SSE bytes (``data: {...}\\n\\n`` events, ending with ``data: [DONE]``)."""


def dumps(obj: dict[str, Any]) -> bytes:
    """A :mod:`wire.build` body as bytes (orjson on the hot path; :mod:`wire` itself stays standard library)."""
    return orjson.dumps(obj)


def sse_event(obj: dict[str, Any]) -> bytes:
    """One SSE event carrying a :mod:`wire.build` object (a chunk), serialised with orjson."""
    return sse.event(orjson.dumps(obj))


def sse_error(message: str, type_: str = "upstream_error", code: str | None = None) -> bytes:
    """The event a stream ends with when it fails after the first byte (no failover is possible then)."""
    return sse.event(orjson.dumps(error_dict(message, type_, None, code)))


def chat_messages(call: Call) -> list[dict[str, str]]:
    """Chat messages as plain role/content dicts, plus any retry feedback."""
    assert isinstance(call.request, ChatCompletionRequest)
    msgs = [{"role": m.role, "content": message_text({"content": m.content})} for m in call.request.messages]
    return msgs + call.extra_messages
