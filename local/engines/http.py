"""Shared HTTP plumbing for engines reached over the network (aiohttp: it held ~4,000 req/s through a proxy on one
core where httpx's pool collapsed past ~16-32 in flight; see docs/benchmarks/local_gateway.md)."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import orjson

from config.local_section import EngineSpec
from local.engines.h1 import UpstreamClosed, UpstreamConnectError
from local.errors import EngineError, UpstreamRejected

SNIPPET = 300


def make_session(spec: EngineSpec) -> aiohttp.ClientSession:
    """A session with the engine's connect/read timeouts and connection cap (call inside the event loop)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=spec.connect_timeout_s, sock_read=spec.read_timeout_s)
    connector = aiohttp.TCPConnector(limit=spec.max_connections, limit_per_host=spec.max_connections, ttl_dns_cache=300)
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return aiohttp.ClientSession(
        base_url=spec.base_url,
        timeout=timeout,
        connector=connector,
        headers=headers,
        json_serialize=lambda o: orjson.dumps(o).decode(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


def transport_error(spec: EngineSpec, err: BaseException) -> EngineError:
    """Turn a client exception (aiohttp's or the fast client's) into an ``EngineError`` naming the engine and cause."""
    if isinstance(err, UpstreamConnectError | aiohttp.ClientConnectorError | ConnectionRefusedError):
        return EngineError(spec.name, 503, f"unreachable at {spec.base_url}: {err}", "upstream_unreachable")
    if isinstance(err, TimeoutError | asyncio.TimeoutError):
        return EngineError(
            spec.name,
            504,
            f"no answer from {spec.base_url} within read_timeout_s={spec.read_timeout_s:g} "
            f"(connect_timeout_s={spec.connect_timeout_s:g})",
            "upstream_timeout",
        )
    if isinstance(err, UpstreamClosed | aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | ConnectionError):
        return EngineError(spec.name, 502, f"{spec.base_url} closed the connection mid-answer", "upstream_disconnected")
    return EngineError(spec.name, 502, f"{spec.base_url}: {err.__class__.__name__}: {err}", "upstream_error")


async def check_status(spec: EngineSpec, resp: aiohttp.ClientResponse) -> None:
    """Raise for a non-200 answer: 4xx (bad request) is passed to the client, 429/5xx may fail over."""
    if resp.status == 200:
        return
    body = await resp.read()
    if 400 <= resp.status < 500 and resp.status != 429:
        raise UpstreamRejected(resp.status, body)
    snippet = body[:SNIPPET].decode(errors="replace")
    raise EngineError(spec.name, 502 if resp.status != 429 else 503, f"answered HTTP {resp.status}: {snippet}")


async def probe(session: aiohttp.ClientSession, path: str, timeout_s: float) -> bool:
    """GET a health path; True on 200 within ``timeout_s``."""
    try:
        async with session.get(path, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            await resp.read()
            return resp.status == 200
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False
