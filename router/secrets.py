"""Secrets Manager values the router needs for the on-prem gateway, cached and re-read so a rotation needs no redeploy.

One mechanism (:class:`SecretCache`) serves the gateway API key, the pinned CA bundle and the client certificate
(``router.tls``). Secret values never appear in a message or a log line: errors name the exception type only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from router import aws
from router.errors import TargetUnavailable

SECRET_TTL_S = 300.0  # re-read every 5 minutes so a rotation takes effect without a redeploy


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


def _as_is(raw: str) -> str:
    return raw


class SecretCache:
    """One secret string from Secrets Manager, cached for ``ttl_s``.

    Args:
        secret_arn: the secret (empty: nothing configured; :meth:`get` returns "").
        client_factory: builds the ``secretsmanager`` client (default: boto3, imported on first use).
        what: what the secret is, for error messages ("local gateway key").
        code: the error code when it cannot be read.
        parse: turns the secret string into the cached value (default: the gateway key, :func:`key_from_secret`).
        ttl_s: how long a read value is used before it is read again.
    """

    def __init__(
        self,
        secret_arn: str,
        client_factory: Callable[[], Any] | None = None,
        *,
        what: str = "local gateway key",
        code: str = "secret_unavailable",
        parse: Callable[[str], str] = key_from_secret,
        ttl_s: float = SECRET_TTL_S,
    ) -> None:
        self.secret_arn = secret_arn
        self.what = what
        self.code = code
        self.ttl_s = ttl_s
        self._parse = parse
        self._client_factory = client_factory or _default_factory()
        self._client: Any = None
        self._value: str | None = None
        self._read_at = 0.0

    @classmethod
    def raw(cls, secret_arn: str, client_factory: Callable[[], Any] | None, *, what: str, code: str) -> SecretCache:
        """A cache of the secret string as stored (no parsing), e.g. a PEM bundle."""
        return cls(secret_arn, client_factory, what=what, code=code, parse=_as_is)

    def get(self, *, refresh: bool = False) -> str:
        """The value (empty when no secret is configured), read again when older than ``ttl_s`` or on ``refresh``.

        Raises:
            TargetUnavailable: Secrets Manager cannot be read (the local target cannot be called without it).
        """
        if not self.secret_arn:
            return ""
        if refresh or self._value is None or time.monotonic() - self._read_at >= self.ttl_s:
            try:
                if self._client is None:
                    self._client = self._client_factory()
                raw = self._client.get_secret_value(SecretId=self.secret_arn)["SecretString"]
            except Exception as exc:  # any boto/network failure (or no SecretString) means: no value
                raise TargetUnavailable(f"{self.what} unavailable ({type(exc).__name__})", code=self.code) from None
            self._value = self._parse(raw)
            self._read_at = time.monotonic()
        return self._value


def _default_factory() -> Callable[[], Any]:
    return aws.client_factory("secretsmanager", 2.0, 5.0)
