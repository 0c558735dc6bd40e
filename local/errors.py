"""The gateway's errors and the OpenAI error body they are answered with."""

from __future__ import annotations

import orjson
from starlette.responses import Response


class GatewayError(Exception):
    """An error answered to the client as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> bytes:
        """The OpenAI error body as JSON bytes."""
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> Response:
        """A JSON response with the status, body and any extra headers (e.g. ``Retry-After``)."""
        return Response(self.body(), status_code=self.status, headers=self.headers, media_type="application/json")


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    """Serialise the OpenAI error body."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", param, code)


class EngineError(Exception):
    """An engine failed (connect, timeout, bad status, broken stream); the router may fail over.

    ``status`` is what the client gets if no other engine can answer: 503 unreachable/open breaker, 504 timeout,
    502 anything else the engine did wrong.
    """

    def __init__(self, engine: str, status: int, reason: str, code: str = "upstream_error") -> None:
        super().__init__(f"engine {engine!r}: {reason}")
        self.engine = engine
        self.status = status
        self.reason = reason
        self.code = code


class UpstreamRejected(Exception):
    """The engine answered 4xx: the request itself is wrong, so pass the answer on and do not fail over."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body
