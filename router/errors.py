"""Errors the router answers with the OpenAI error body (``wire.errors``: one body and status -> type mapping).

Every error carries its HTTP status, ``param`` and ``code``; the ``type`` comes from the status, as everywhere in the
project.
"""

from __future__ import annotations

from wire.errors import WireError


class RouterError(WireError):
    """Base of every error the handler answers with an OpenAI error body.

    Args:
        message: what went wrong and what is allowed (never contains prompt text or secret values).
        param: the request field at fault, if any.
        code: a short machine-readable code.
    """

    status = 500

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(type(self).status, message, param, code)


class BadRequest(RouterError):
    """The client sent something invalid (400); never retried, never failed over."""

    status = 400


class NotFound(RouterError):
    """Unknown path or method (404)."""

    status = 404


class TargetUnavailable(RouterError):
    """A target could not answer (connection, timeout, 5xx, open breaker); the router may fail over."""

    status = 503


class UpstreamClientError(RouterError):
    """A target rejected the request as invalid (4xx): the client's fault, passed through without failover."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        WireError.__init__(self, status, message, param, code)


class SettingsError(ValueError):
    """A ``ROUTER_*`` environment variable is missing or malformed (a deployment bug, raised at cold start)."""
