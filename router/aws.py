"""boto3 clients for the router, imported lazily so the decision path's cold start stays small."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def client_factory(service: str, connect_s: float, read_s: float) -> Callable[[], Any]:
    """A function that builds a boto3 client with the given timeouts and a single attempt (the router fails over)."""

    def make() -> Any:
        import boto3  # lazy: ~100 ms of import the decision path does not pay
        from botocore.config import Config

        cfg = Config(connect_timeout=connect_s, read_timeout=read_s, retries={"max_attempts": 1, "mode": "standard"})
        return boto3.client(service, config=cfg)

    return make


def model_error_status(exc: Exception) -> int | None:
    """The model container's own HTTP status inside a ``sagemaker-runtime`` ModelError, if there is one."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    original = response.get("OriginalStatusCode")
    return original if isinstance(original, int) else None
