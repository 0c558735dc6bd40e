"""Errors the router turns into OpenAI-style HTTP error bodies.

Every error carries its HTTP status and the OpenAI ``type``/``param``/``code`` so the handler maps it in one place.
"""

from __future__ import annotations


class RouterError(Exception):
    """Base of every error the handler answers with an OpenAI error body.

    Args:
        message: what went wrong and what is allowed (never contains prompt text or secret values).
        param: the request field at fault, if any.
        code: a short machine-readable code.
    """

    status = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error body ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


class BadRequest(RouterError):
    """The client sent something invalid (400); never retried, never failed over."""

    status = 400
    error_type = "invalid_request_error"


class NotFound(RouterError):
    """Unknown path or method (404)."""

    status = 404
    error_type = "invalid_request_error"


class TargetUnavailable(RouterError):
    """A target could not answer (connection, timeout, 5xx, open breaker); the router may fail over."""

    status = 503
    error_type = "service_unavailable"


class UpstreamClientError(RouterError):
    """A target rejected the request as invalid (4xx): the client's fault, passed through without failover."""

    error_type = "invalid_request_error"

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code)
        self.status = status


class SettingsError(ValueError):
    """A ``ROUTER_*`` environment variable is missing or malformed (a deployment bug, raised at cold start)."""
