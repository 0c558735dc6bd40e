"""The on-prem gateway's API key from Secrets Manager, cached and re-read so a rotation needs no redeploy."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from router import aws
from router.errors import TargetUnavailable

SECRET_TTL_S = 300.0  # re-read the gateway key every 5 minutes so a rotation takes effect without a redeploy


class SecretCache:
    """The gateway API key from Secrets Manager, cached for :data:`SECRET_TTL_S`.

    The secret is either the key itself or JSON with an ``api_key`` field. The value is never logged.

    Args:
        secret_arn: the secret (empty: the gateway needs no key).
        client_factory: builds the ``secretsmanager`` client (default: boto3, imported on first use).
    """

    def __init__(self, secret_arn: str, client_factory: Callable[[], Any] | None = None) -> None:
        self.secret_arn = secret_arn
        self._client_factory = client_factory or _default_factory()
        self._client: Any = None
        self._value: str | None = None
        self._read_at = 0.0

    def get(self, *, refresh: bool = False) -> str:
        """The key (empty when no secret is configured).

        Raises:
            TargetUnavailable: Secrets Manager cannot be read (the local target cannot be called without its key).
        """
        if not self.secret_arn:
            return ""
        if refresh or self._value is None or time.monotonic() - self._read_at > SECRET_TTL_S:
            try:
                if self._client is None:
                    self._client = self._client_factory()
                raw = self._client.get_secret_value(SecretId=self.secret_arn)["SecretString"]
            except Exception as exc:  # any boto/network failure means: no key, so the target is unavailable
                raise TargetUnavailable(
                    f"local gateway key unavailable ({type(exc).__name__})", code="secret_unavailable"
                ) from None
            self._value = key_from_secret(raw)
            self._read_at = time.monotonic()
        return self._value


def _default_factory() -> Callable[[], Any]:
    return aws.client_factory("secretsmanager", 2.0, 5.0)


def key_from_secret(raw: str) -> str:
    """The key in a secret string: the string itself, or the ``api_key`` field of a JSON object."""
    if raw.lstrip().startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return raw
        if isinstance(data, dict) and isinstance(data.get("api_key"), str):
            return str(data["api_key"])
    return raw
