"""Server-sent events as OpenAI streams them: ``data: <json>\\n\\n`` events ending with ``data: [DONE]``.

:func:`event` frames one payload; :class:`EventParser` takes bytes in whatever pieces a transport delivers and returns
the complete events' payloads (``[DONE]`` included), so a proxy can look at events without buffering the stream.
"""

from __future__ import annotations

import json
from typing import Any

from wire.errors import error_dict

DONE = b"data: [DONE]\n\n"
DONE_PAYLOAD = b"[DONE]"
# A line longer than this without an event end is a broken stream, not a reason to buffer without bound.
MAX_EVENT_BYTES = 8 * 1024 * 1024


def event(payload: dict[str, Any] | bytes) -> bytes:
    """One SSE event; a dict is serialised as compact JSON."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return b"data: " + payload + b"\n\n"


def error_event(message: str, type_: str = "upstream_error", code: str | None = None) -> bytes:
    """The event a stream ends with when it fails after its first byte (OpenAI and vLLM send the error in-band)."""
    return event(error_dict(message, type_, None, code))


class EventTooLarge(ValueError):
    """An event grew past :data:`MAX_EVENT_BYTES` without ending."""


class EventParser:
    """Incremental SSE parser: :meth:`feed` returns the ``data`` payloads of the events completed so far.

    Multi-line ``data:`` fields are joined with ``\\n``; comments (``:``) and other fields are skipped; ``\\r\\n`` line
    ends are accepted.
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        """Payloads of the events ``chunk`` completes.

        Raises:
            EventTooLarge: an unfinished event is over the limit.
        """
        buf = self._buf + chunk
        out: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    out.append(b"\n".join(self._data))
                    self._data = []
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
        self._buf = buf[start:]
        if len(self._buf) + sum(len(d) for d in self._data) > self.max_event_bytes:
            raise EventTooLarge(f"an SSE event is over {self.max_event_bytes} bytes without ending")
        return out

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished event are buffered."""
        return bool(self._buf or self._data)


def parse_events(raw: bytes) -> list[bytes]:
    """Every complete event payload of a whole SSE body."""
    return EventParser(max_event_bytes=len(raw) + 1).feed(raw)


def decode(payload: bytes) -> dict[str, Any] | None:
    """A payload as a JSON object; None for ``[DONE]``.

    Raises:
        ValueError: the payload is not a JSON object.
    """
    if payload == DONE_PAYLOAD:
        return None
    obj = json.loads(payload)
    if not isinstance(obj, dict):
        raise ValueError("an SSE event is not a JSON object")
    return obj
