"""The gateway's errors: client errors answered in the OpenAI error body (from :mod:`wire.errors`), and one exception
family for everything that goes wrong talking to an engine."""

from __future__ import annotations

from starlette.responses import Response

from wire.errors import WireError, error_body
from wire.errors import bad_request as bad_request

__all__ = [
    "EngineBadResponse",
    "EngineDisconnected",
    "EngineError",
    "EngineStatusError",
    "EngineTimeout",
    "EngineUnreachable",
    "GatewayError",
    "UpstreamRejected",
    "bad_request",
    "error_body",
]


class GatewayError(WireError):
    """An error answered to the client as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, param, code, type_, headers)


def error_response(err: WireError) -> Response:
    """A JSON response with the error's status, body and extra headers (e.g. ``Retry-After``)."""
    return Response(err.body(), status_code=err.status, headers=err.headers, media_type="application/json")


class EngineError(Exception):
    """An engine failed (connect, timeout, bad status, broken stream); the router may fail over.

    ``status`` is what the client gets if no other engine can answer: 503 unreachable/open breaker/overloaded, 504
    timeout, 502 anything else the engine did wrong. ``headers`` keeps what the client should see (``Retry-After``).
    """

    default_status = 502
    default_code = "upstream_error"

    def __init__(
        self,
        engine: str,
        status: int | None = None,
        reason: str = "failed",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"engine {engine!r}: {reason}")
        self.engine = engine
        self.status = status if status is not None else self.default_status
        self.reason = reason
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}


class EngineUnreachable(EngineError):
    """No connection (refused, unreachable, connect timeout, no free connection slot in time)."""

    default_status = 503
    default_code = "upstream_unreachable"


class EngineTimeout(EngineError):
    """No answer within the read timeout or the request deadline."""

    default_status = 504
    default_code = "upstream_timeout"


class EngineDisconnected(EngineError):
    """The engine closed the connection mid-answer."""

    default_code = "upstream_disconnected"


class EngineBadResponse(EngineError):
    """The engine answered something that is not what the protocol promises (malformed, too large, error event)."""

    default_code = "upstream_bad_response"


class EngineStatusError(EngineError):
    """The engine answered 429 or 5xx."""


class UpstreamRejected(Exception):
    """The engine answered 4xx: the request itself is wrong, so pass the answer on and do not fail over."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body
        self.headers = headers or {}
