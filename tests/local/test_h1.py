"""The gateway's small HTTP/1.1 client against real aiohttp servers: chunked streams read completely even when the
consumer is slow, keep-alive reuse, a stale kept-alive connection retried once, timeouts and refused connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from local.engines.h1 import H1Pool
from local.errors import EngineBadResponse, EngineDisconnected, EngineTimeout, EngineUnreachable
from tests.local.fakes import closed_port

EVENTS = 200


async def _server(handler: web.Handler, **kw: object) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2, **kw)  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def _stream(request: web.Request) -> web.StreamResponse:
    if request.path == "/slow":
        await asyncio.sleep(2)
    resp = web.StreamResponse()
    await resp.prepare(request)
    for i in range(EVENTS):
        await resp.write(f"data: {i}\n\n".encode())
        if i % 20 == 0:
            await asyncio.sleep(0.001)
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _collect(chunks: AsyncIterator[bytes]) -> bytes:
    out = []
    async for c in chunks:
        out.append(c)
        await asyncio.sleep(0.002)  # a slow consumer: more data arrives while it holds the last piece
    return b"".join(out)


def test_stream_is_complete_and_connection_reused() -> None:
    async def main() -> None:
        runner, url = await _server(_stream)
        pool = H1Pool("e", url, 1.0, 5.0, 4, {"Content-Type": "application/json"})
        try:
            expected = b"".join(f"data: {i}\n\n".encode() for i in range(EVENTS)) + b"data: [DONE]\n\n"
            for _ in range(3):
                resp = await pool.request("POST", "/v1/chat/completions", b"{}")
                assert resp.status == 200
                assert await _collect(resp.iter_chunks()) == expected
                resp.release()
            assert len(pool._idle) == 1  # one connection, kept alive across the three requests
        finally:
            await pool.close()
            await runner.cleanup()

    asyncio.run(main())


def test_stale_keepalive_connection_is_retried() -> None:
    async def main() -> None:
        async def ok(_: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        runner, url = await _server(ok, keepalive_timeout=0.1)
        pool = H1Pool("e", url, 1.0, 5.0, 4, {})
        try:
            resp = await pool.request("GET", "/health")
            assert await resp.read() == b'{"ok": true}'
            resp.release()
            await asyncio.sleep(0.3)  # the server closes the idle connection
            resp = await pool.request("GET", "/health")
            assert resp.status == 200 and await resp.read() == b'{"ok": true}'
            resp.release()
        finally:
            await pool.close()
            await runner.cleanup()

    asyncio.run(main())


def test_timeouts_refusal_and_early_close() -> None:
    async def main() -> None:
        async def close_early(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            await resp.prepare(request)
            await resp.write(b"data: 1\n\n")
            request.transport.close()  # type: ignore[union-attr]
            return resp

        runner, url = await _server(_stream)
        runner2, url2 = await _server(close_early)
        try:
            with pytest.raises(EngineTimeout):
                await H1Pool("e", url, 1.0, 0.2, 4, {}).request("POST", "/slow")
            with pytest.raises(EngineUnreachable):
                await H1Pool("e", f"http://127.0.0.1:{closed_port()}", 1.0, 1.0, 4, {}).request("GET", "/")
            resp = await H1Pool("e", url2, 1.0, 1.0, 4, {}).request("GET", "/")
            with pytest.raises(EngineDisconnected):
                await _collect(resp.iter_chunks())
        finally:
            await runner.cleanup()
            await runner2.cleanup()

    asyncio.run(main())


def test_headers_size_cap_and_slots_released_on_every_path() -> None:
    """Response headers are exposed (Retry-After survives); an answer over max_body_bytes is an EngineBadResponse as
    it arrives; every path (ok, too large, timeout, cancelled) gives its connection slot back."""

    async def main() -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            if request.path == "/big":
                return web.Response(body=b"x" * 300_000)
            if request.path == "/hang":
                await asyncio.sleep(5)
            return web.Response(status=503, headers={"Retry-After": "3"}, text="busy")

        runner, url = await _server(handler)
        pool = H1Pool("e", url, 1.0, 0.3, 2, {}, pool_timeout=0.2, max_body_bytes=100_000)
        try:
            resp = await pool.request("GET", "/busy")
            assert resp.status == 503 and resp.headers["retry-after"] == "3"
            assert await resp.read() == b"busy"
            resp.release()
            resp = await pool.request("GET", "/big")
            with pytest.raises(EngineBadResponse, match="max_upstream_bytes=100000"):
                await resp.read()
            resp.release()
            with pytest.raises(EngineTimeout):
                await pool.request("GET", "/hang")
            task = asyncio.ensure_future(pool.request("GET", "/hang", timeout=5))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pool.free_slots == 2
            # both slots taken: the third request waits pool_timeout_s, then is refused
            held = [await pool.request("GET", "/busy") for _ in range(2)]
            with pytest.raises(EngineUnreachable, match="pool_timeout_s=0.2"):
                await pool.request("GET", "/busy")
            for r in held:
                r.release()
            assert pool.free_slots == 2
        finally:
            await pool.close()
            await runner.cleanup()

    asyncio.run(main())
