"""Shared HTTP plumbing for engines reached over the network: one response interface over both clients (the fast
HTTP/1.1 client, :mod:`local.engines.h1`, and aiohttp for Ollama and https:// engines), the one place statuses are
checked, and aiohttp's errors turned into the gateway's engine exception family.

aiohttp over httpx: it held ~4,000 req/s through a proxy on one core where httpx's pool collapsed past ~16-32 in
flight (see docs/benchmarks/local_gateway.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp
import orjson

from config.local_section import EngineSpec
from local.errors import (
    EngineBadResponse,
    EngineDisconnected,
    EngineError,
    EngineStatusError,
    EngineTimeout,
    EngineUnreachable,
    UpstreamRejected,
)

SNIPPET = 300  # bytes of an engine's error body quoted in our message
ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error body read at all (a 200 MiB error body is not read into memory)
KEPT_HEADERS = ("retry-after",)


class EngineResponse(Protocol):
    """What adapters need from a response, whichever client made it."""

    status: int
    headers: dict[str, str]

    async def read(self, limit: int | None = None) -> bytes: ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    @property
    def complete(self) -> bool: ...

    def release(self) -> None: ...


class AiohttpResponse:
    """:class:`EngineResponse` over aiohttp, with the body capped and aiohttp's errors translated."""

    def __init__(self, spec: EngineSpec, resp: aiohttp.ClientResponse) -> None:
        self._spec = spec
        self._resp = resp
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.headers.items() if k.lower() in KEPT_HEADERS}

    async def read(self, limit: int | None = None) -> bytes:
        cap = self._spec.max_upstream_bytes if limit is None else limit
        want = cap + 1 if limit is None else cap  # one byte over the cap proves the answer is too large
        parts: list[bytes] = []
        total = 0
        try:
            while total < want:
                chunk = await self._resp.content.read(min(1 << 16, want - total))
                if not chunk:
                    break
                parts.append(chunk)
                total += len(chunk)
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise transport_error(self._spec, err) from err
        if limit is None and total > cap:
            raise EngineBadResponse(self._spec.name, reason=f"answer is over max_upstream_bytes={cap}")
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        # aiohttp's StreamReader pauses the socket itself when its buffer is full (backpressure).
        total = 0
        try:
            async for chunk in self._resp.content.iter_any():
                total += len(chunk)
                if total > self._spec.max_upstream_bytes:
                    raise EngineBadResponse(
                        self._spec.name, reason=f"answer is over max_upstream_bytes={self._spec.max_upstream_bytes}"
                    )
                yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise transport_error(self._spec, err) from err

    async def lines(self) -> AsyncIterator[bytes]:
        """Body lines (NDJSON), each capped by aiohttp's line limit, the total by ``max_upstream_bytes``."""
        total = 0
        try:
            async for line in self._resp.content:
                total += len(line)
                if total > self._spec.max_upstream_bytes:
                    raise EngineBadResponse(
                        self._spec.name, reason=f"answer is over max_upstream_bytes={self._spec.max_upstream_bytes}"
                    )
                yield line
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as err:
            raise transport_error(self._spec, err) from err

    @property
    def complete(self) -> bool:
        return self._resp.content.at_eof()

    def release(self) -> None:
        if self.complete:
            self._resp.release()
        else:
            self._resp.close()


def make_session(spec: EngineSpec) -> aiohttp.ClientSession:
    """A session with the engine's connect/read timeouts and connection cap (call inside the event loop)."""
    timeout = aiohttp.ClientTimeout(
        total=None, connect=spec.pool_timeout_s, sock_connect=spec.connect_timeout_s, sock_read=spec.read_timeout_s
    )
    connector = aiohttp.TCPConnector(limit=spec.max_connections, limit_per_host=spec.max_connections, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        base_url=spec.base_url,
        timeout=timeout,
        connector=connector,
        headers=engine_headers(spec),
        json_serialize=lambda o: orjson.dumps(o).decode(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


def engine_headers(spec: EngineSpec) -> dict[str, str]:
    """Headers sent with every request to the engine (its API key from ``api_key_env``, never logged)."""
    headers = {"Content-Type": "application/json", "Accept": "*/*"}
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


async def send(
    spec: EngineSpec, session: aiohttp.ClientSession, method: str, path: str, body: bytes, deadline: float | None
) -> AiohttpResponse:
    """One aiohttp request, its failures as the engine exception family."""
    loop = asyncio.get_running_loop()
    kw = {}
    if deadline is not None and deadline != float("inf"):
        kw["timeout"] = aiohttp.ClientTimeout(
            total=max(0.001, deadline - loop.time()),
            sock_connect=spec.connect_timeout_s,
            sock_read=spec.read_timeout_s,
        )
    try:
        resp = await session.request(method, path, data=body, **kw)  # type: ignore[arg-type]
    except (TimeoutError, aiohttp.ClientError, OSError) as err:
        raise transport_error(spec, err) from err
    return AiohttpResponse(spec, resp)


def transport_error(spec: EngineSpec, err: BaseException) -> EngineError:
    """Turn an aiohttp/OS exception into an ``EngineError`` naming the engine and cause."""
    if isinstance(err, EngineError):
        return err
    if isinstance(err, aiohttp.ConnectionTimeoutError):
        return EngineUnreachable(spec.name, reason=f"unreachable at {spec.base_url}: connect timed out")
    if isinstance(err, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return EngineUnreachable(spec.name, reason=f"unreachable at {spec.base_url}: {err}")
    if isinstance(err, TimeoutError | asyncio.TimeoutError):
        return EngineTimeout(
            spec.name,
            reason=f"no answer from {spec.base_url} within read_timeout_s={spec.read_timeout_s:g} "
            f"(connect_timeout_s={spec.connect_timeout_s:g}) or before the request deadline",
        )
    if isinstance(err, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | ConnectionError):
        return EngineDisconnected(spec.name, reason=f"{spec.base_url} closed the connection mid-answer")
    return EngineBadResponse(spec.name, reason=f"{spec.base_url}: {err.__class__.__name__}: {err}")


async def check_status(name: str, resp: EngineResponse) -> None:
    """The one status check: 200 passes; 4xx (but 429) is the client's (passed on, no failover); 429/5xx may fail
    over. Only the first ``ERROR_BODY_LIMIT`` bytes of an error body are read; the connection is released.

    Raises:
        UpstreamRejected, EngineStatusError.
    """
    if resp.status == 200:
        return
    try:
        body = await resp.read(ERROR_BODY_LIMIT)
    finally:
        resp.release()
    headers = {k: v for k, v in resp.headers.items() if k in KEPT_HEADERS}
    if 400 <= resp.status < 500 and resp.status != 429:
        raise UpstreamRejected(resp.status, body, headers)
    snippet = body[:SNIPPET].decode(errors="replace")
    raise EngineStatusError(
        name,
        503 if resp.status == 429 else 502,
        f"answered HTTP {resp.status}: {snippet}",
        "upstream_overloaded" if resp.status == 429 else "upstream_error",
        headers,
    )
