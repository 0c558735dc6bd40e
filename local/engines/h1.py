"""A small HTTP/1.1 keep-alive client for the gateway's hot path: one ``transport.write`` per request, responses
parsed by httptools (the C parser uvicorn uses), bodies handed over as they arrive.

Why not aiohttp here: under profiling aiohttp's client was ~40% of the gateway's CPU per proxied request (request and
response objects, header multidicts, tracing hooks); this client does only what a proxy to a known engine needs.
aiohttp is still used for Ollama and for https:// engines.

Scope: plain HTTP/1.1 to servers that frame responses with Content-Length or chunked encoding (uvicorn-based vLLM and
SGLang do); a response delimited only by the connection closing is reported as ``UpstreamClosed``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools


class UpstreamConnectError(ConnectionError):
    """Could not open a connection (refused, unreachable, or connect timeout)."""


class UpstreamTimeout(TimeoutError):
    """No bytes from the upstream within the read timeout."""


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before the response was complete."""


class _Conn(asyncio.Protocol):
    """One connection; its parser callbacks fill ``chunks`` and wake the single waiting reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self.error = UpstreamClosed(f"malformed HTTP response: {err}")
            self.close()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            self.error = UpstreamClosed("connection closed before the response was complete")
        self._wake()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def reset(self) -> None:
        """Prepare a kept-alive connection for its next request."""
        self.parser = httptools.HttpResponseParser(self)
        self.chunks.clear()
        self.status = 0
        self.headers_done = self.complete = self.keep_alive = False
        self.error = None

    async def wait(self, timeout: float) -> None:
        """Wait for the next parser event (or the connection's end), at most ``timeout`` seconds."""
        if self.error is not None:
            raise self.error
        fut = self.loop.create_future()
        self.waiter = fut
        timer = self.loop.call_later(timeout, _expire, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self.waiter = None
        if self.error is not None and not self.chunks and not self.complete:
            raise self.error

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(UpstreamTimeout())


class H1Response:
    """A response whose body is read (or streamed) from its connection; ``release`` returns the connection."""

    def __init__(self, pool: H1Pool, conn: _Conn) -> None:
        self._pool = pool
        self._conn = conn
        self.status = conn.status
        self._released = False

    async def read(self) -> bytes:
        """The whole body."""
        c = self._conn
        while not c.complete:
            await c.wait(self._pool.read_timeout)
        body = b"".join(c.chunks)
        c.chunks.clear()
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (chunked encoding already removed)."""
        c = self._conn
        while True:
            if c.chunks:
                # Hand over everything that has arrived as one piece: one ASGI send instead of one per SSE event.
                data = c.chunks.popleft() if len(c.chunks) == 1 else b"".join(c.chunks)
                c.chunks.clear()
                yield data
                continue  # more may have arrived while the consumer had the data
            if c.complete:
                return
            await c.wait(self._pool.read_timeout)

    @property
    def complete(self) -> bool:
        return self._conn.complete

    def release(self) -> None:
        """Give the connection back if the response was fully read and keep-alive; otherwise close it."""
        if self._released:
            return
        self._released = True
        self._pool._give_back(self._conn)


class H1Pool:
    """Keep-alive connections to one ``http://host:port`` with a cap on how many are open."""

    def __init__(
        self, base_url: str, connect_timeout: float, read_timeout: float, max_connections: int, headers: dict[str, str]
    ) -> None:
        u = urlsplit(base_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"base_url {base_url!r}: the fast client speaks plain http://host:port")
        self.host = u.hostname
        self.port = u.port or 80
        self.prefix = u.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[_Conn] = deque()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head_tail = f"Host: {self.host}:{self.port}\r\n{extra}".encode("latin-1")

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(loop), self.host, self.port), self.connect_timeout
            )
        except (TimeoutError, OSError) as err:
            raise UpstreamConnectError(f"{err.__class__.__name__}: {err}") from err
        return proto

    async def request(self, method: str, path: str, body: bytes = b"", timeout: float | None = None) -> H1Response:
        """Send a request and wait for the response headers.

        Raises:
            UpstreamConnectError, UpstreamTimeout, UpstreamClosed.
        """
        head = (
            f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1")
            + self._head_tail
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        await self._slots.acquire()
        try:
            for attempt in (0, 1):
                conn = None
                while self._idle and conn is None:
                    c = self._idle.pop()
                    conn = None if c.closed else c
                reused = conn is not None
                if conn is None:
                    conn = await self._connect()
                assert conn.transport is not None
                conn.transport.write(head + body)
                try:
                    while not conn.headers_done:
                        await conn.wait(timeout or self.read_timeout)
                except UpstreamClosed:
                    conn.close()
                    # A kept-alive connection the server had already closed: retry once on a fresh one.
                    if reused and attempt == 0:
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
                return H1Response(self, conn)
            raise UpstreamClosed("connection closed before the response headers")
        except BaseException:
            self._slots.release()
            raise

    def _give_back(self, conn: _Conn) -> None:
        if conn.complete and conn.keep_alive and not conn.closed and conn.error is None:
            conn.reset()
            self._idle.append(conn)
        else:
            conn.close()
        self._slots.release()

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
