"""The OpenAI error body ``{"error": {"message", "type", "param", "code"}}`` and the one mapping of HTTP status to
error ``type`` every OpenAI-facing surface of the project uses."""

from __future__ import annotations

import json
from typing import Any

# The ``type`` an error of each status carries (OpenAI's names; 5xx from an engine behind us are "upstream_error").
TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    501: "server_error",
    502: "upstream_error",
    503: "upstream_error",
    504: "upstream_error",
}
# The ``code`` used when the caller gives none.
CODE_BY_STATUS: dict[int, str] = {
    400: "invalid_value",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
    500: "internal_error",
    502: "upstream_error",
    503: "upstream_unavailable",
    504: "upstream_timeout",
}


def error_type(status: int) -> str:
    """The OpenAI error ``type`` for an HTTP status (unknown 4xx: invalid_request_error, 5xx: server_error)."""
    t = TYPE_BY_STATUS.get(status)
    if t is not None:
        return t
    return "invalid_request_error" if 400 <= status < 500 else "server_error"


def error_dict(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The error body as a dict."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    """The error body as compact JSON bytes."""
    return json.dumps(error_dict(message, type_, param, code), separators=(",", ":"), ensure_ascii=False).encode()


class WireError(Exception):
    """An error answered as the OpenAI error body.

    Args:
        status: the HTTP status.
        message: what went wrong and what is allowed (never secrets or prompt text).
        param: the request field at fault (``messages[0].role``), if any.
        code: a short machine-readable code; defaults by status.
        type_: the OpenAI error type; defaults by status (:func:`error_type`).
        headers: extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code if code is not None else CODE_BY_STATUS.get(status)
        self.type = type_ or error_type(status)
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return error_dict(self.message, self.type, self.param, self.code)

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.param, self.code)


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> WireError:
    """A 400 ``invalid_request_error``; ``message`` should start with the field it is about."""
    return WireError(400, message, param, code)


def parse_error_body(raw: bytes | str) -> dict[str, Any] | None:
    """The ``error`` object of an OpenAI error body (also the ``{"error": "text"}`` some servers send), else None."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or "error" not in data:
        return None
    err = data["error"]
    if isinstance(err, dict):
        return {
            "message": str(err.get("message", "")),
            "type": err.get("type"),
            "param": err.get("param"),
            "code": err.get("code"),
        }
    if err:
        return {"message": str(err), "type": None, "param": None, "code": None}
    return None
