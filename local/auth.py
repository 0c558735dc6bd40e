"""API keys, kept only as SHA-256 digests: from the config (hashes), the environment and a secret file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from config.errors import ConfigError
from config.local_section import LocalConfig
from local.errors import GatewayError

KEY_PREFIX = "sha256:"


@dataclass(frozen=True)
class KeyInfo:
    """Who a key belongs to and its rate limit."""

    name: str
    rate_per_s: float
    burst: int


def digest(key: str) -> str:
    """Hex SHA-256 of a key (what is stored and compared)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _file_digests(path: Path) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"local.api_keys_file: {path} does not exist")
    out = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(KEY_PREFIX):
            hexd = line.removeprefix(KEY_PREFIX)
            if len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
                raise ConfigError(f"local.api_keys_file: {path}:{n}: sha256: must be followed by 64 hex digits")
            out.append(hexd)
        else:
            out.append(digest(line))
    return out


class KeyStore:
    """Maps a presented bearer token to its :class:`KeyInfo`."""

    def __init__(self, local: LocalConfig, env_key: str | None) -> None:
        rl = local.rate_limit
        self._keys: dict[str, KeyInfo] = {}
        for k in local.keys:
            self._keys[k.sha256] = KeyInfo(k.name, k.rate_per_s or rl.per_key_per_s, k.burst or rl.burst)
        if local.api_keys_file:
            for i, d in enumerate(_file_digests(Path(local.api_keys_file))):
                self._keys.setdefault(d, KeyInfo(f"file-{i}", rl.per_key_per_s, rl.burst))
        if env_key:
            self._keys.setdefault(digest(env_key), KeyInfo("env", rl.per_key_per_s, rl.burst))
        if not self._keys:
            raise ConfigError(
                "local.keys: no API key configured; set LLM_GATEWAY_API_KEY, local.api_keys_file or local.keys"
            )

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, authorization: str | None) -> tuple[str, KeyInfo]:
        """Check an ``Authorization: Bearer <key>`` header.

        Returns:
            The key's digest (the rate-limit bucket id) and its info.
        Raises:
            GatewayError: 401 when the header is missing, malformed or the key is unknown.
        """
        if not authorization or not authorization.startswith("Bearer "):
            raise GatewayError(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                "authentication_error",
                None,
                "missing_api_key",
            )
        d = digest(authorization[7:].strip())
        info = self._keys.get(d)
        if info is None:
            raise GatewayError(401, "invalid API key", "authentication_error", None, "invalid_api_key")
        return d, info
