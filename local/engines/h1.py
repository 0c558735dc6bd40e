"""A small HTTP/1.1 keep-alive client for the gateway's hot path: one ``transport.write`` per request, responses
parsed by httptools (the C parser uvicorn uses), bodies handed over as they arrive.

Why not aiohttp here: under profiling aiohttp's client was ~40% of the gateway's CPU per proxied request (request and
response objects, header multidicts, tracing hooks); this client does only what a proxy to a known engine needs.
aiohttp is still used for Ollama and for https:// engines.

Failures are the gateway's one engine exception family (:class:`local.errors.EngineError` subclasses naming the
engine). Memory is bounded: a response body over ``max_body_bytes`` is an error as soon as it arrives, and while a
stream is read the connection stops reading from the socket when ``HIGH_WATER`` bytes wait for a slow consumer
(backpressure to the engine instead of a growing buffer). Connection slots are released on every path.

Scope: plain HTTP/1.1 to servers that frame responses with Content-Length or chunked encoding (uvicorn-based vLLM and
SGLang do); a response delimited only by the connection closing is reported as ``EngineDisconnected``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

from local.errors import EngineBadResponse, EngineDisconnected, EngineError, EngineTimeout, EngineUnreachable

HIGH_WATER = 1 << 20  # bytes buffered for a stream's consumer before the socket is paused
NO_DEADLINE = float("inf")


class _Expired(Exception):
    """Internal: a wait ran out (which limit is decided by the caller)."""


class _Conn(asyncio.Protocol):
    """One connection; its parser callbacks fill ``chunks`` and wake the single waiting reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_body: int) -> None:
        self.loop = loop
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.received = 0
        self.streaming = False
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.error: str | None = None  # why the response cannot complete
        self.error_kind: type[EngineError] = EngineDisconnected
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(EngineBadResponse, f"malformed HTTP response: {err}")
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            self.error = "closed the connection before the response was complete"
        self._wake()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.received += len(body)
        if self.received > self.max_body:
            self._fail(EngineBadResponse, f"answer is over max_upstream_bytes={self.max_body}")
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.streaming and not self.paused and self.buffered > HIGH_WATER and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True

    def _fail(self, kind: type[EngineError], reason: str) -> None:
        if self.error is None:
            self.error, self.error_kind = reason, kind
        self.chunks.clear()
        self.buffered = 0
        self.close()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def take(self) -> bytes:
        """Everything buffered, as one piece; resumes a paused socket."""
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reset(self) -> None:
        """Prepare a kept-alive connection for its next request."""
        self.parser = httptools.HttpResponseParser(self)
        self.chunks.clear()
        self.buffered = self.received = 0
        self.status = 0
        self.headers = {}
        self.headers_done = self.complete = self.keep_alive = self.streaming = False
        self.error = None
        self.error_kind = EngineDisconnected

    async def wait(self, timeout: float) -> None:
        """Wait for the next parser event (or the connection's end), at most ``timeout`` seconds.

        Raises:
            _Expired: nothing happened in time.
            EngineError: the connection failed (the caller's pool adds the engine name).
        """
        if self.error is not None:
            raise self.error_kind("", reason=self.error)
        if timeout <= 0:
            raise _Expired
        fut = self.loop.create_future()
        self.waiter = fut
        timer = self.loop.call_later(timeout, _expire, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self.waiter = None
        if self.error is not None and not self.chunks and not self.complete:
            raise self.error_kind("", reason=self.error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


class H1Response:
    """A response whose body is read (or streamed) from its connection; ``release`` returns the connection.

    Attributes:
        status: the HTTP status.
        headers: response headers, names lower-cased (``retry-after``).
    """

    def __init__(self, pool: H1Pool, conn: _Conn, deadline: float) -> None:
        self._pool = pool
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers
        self.deadline = deadline
        self._released = False

    async def _wait(self) -> None:
        try:
            await self._conn.wait(self._pool._wait_s(self.deadline))
        except _Expired:
            raise self._pool._timeout(self.deadline) from None
        except EngineError as err:
            raise type(err)(self._pool.name, reason=f"{self._pool.base_url} {err.reason}") from None

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (at most ``limit`` bytes when given: the rest is not waited for)."""
        c = self._conn
        while not c.complete and (limit is None or c.buffered < limit):
            await self._wait()
        body = c.take() if c.chunks else b""
        return body if limit is None else body[:limit]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (chunked encoding already removed), with backpressure."""
        c = self._conn
        c.streaming = True
        while True:
            if c.chunks:
                # Hand over everything that has arrived as one piece: one ASGI send instead of one per SSE event.
                yield c.take()
                continue  # more may have arrived while the consumer had the data
            if c.complete:
                return
            await self._wait()

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
    """Keep-alive connections to one ``http://host:port`` with a cap on how many are open.

    Args:
        name: the engine's name (for errors).
        base_url: ``http://host:port[/prefix]``.
        connect_timeout, read_timeout: seconds for a connection / between two reads.
        max_connections: open connections at most; a request waits ``pool_timeout`` seconds for a free one.
        headers: sent with every request.
        max_body_bytes: cap on one response body.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        headers: dict[str, str],
        pool_timeout: float = 5.0,
        max_body_bytes: int = 64 * 1_048_576,
    ) -> None:
        u = urlsplit(base_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"base_url {base_url!r}: the fast client speaks plain http://host:port")
        self.name = name
        self.base_url = base_url
        self.host = u.hostname
        self.port = u.port or 80
        self.prefix = u.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_timeout = pool_timeout
        self.max_body_bytes = max_body_bytes
        self._slots = asyncio.Semaphore(max_connections)
        self._max_connections = max_connections
        self._idle: deque[_Conn] = deque()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head_tail = f"Host: {self.host}:{self.port}\r\n{extra}".encode("latin-1")

    @property
    def free_slots(self) -> int:
        """Connection slots not held by a request (for tests and /ready)."""
        return self._slots._value

    def _wait_s(self, deadline: float) -> float:
        return min(self.read_timeout, deadline - asyncio.get_running_loop().time())

    def _timeout(self, deadline: float) -> EngineTimeout:
        if deadline - asyncio.get_running_loop().time() <= 0:
            return EngineTimeout(self.name, reason=f"{self.base_url} did not finish before the request deadline")
        return EngineTimeout(
            self.name,
            reason=f"no answer from {self.base_url} within read_timeout_s={self.read_timeout:g} "
            f"(connect_timeout_s={self.connect_timeout:g})",
        )

    async def _connect(self, deadline: float) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(loop, self.max_body_bytes), self.host, self.port),
                min(self.connect_timeout, max(0.0, deadline - loop.time())),
            )
        except (TimeoutError, OSError) as err:
            raise EngineUnreachable(
                self.name, reason=f"unreachable at {self.base_url}: {err.__class__.__name__}: {err}"
            ) from None
        return proto

    async def request(
        self, method: str, path: str, body: bytes = b"", timeout: float | None = None, deadline: float | None = None
    ) -> H1Response:
        """Send a request and wait for the response headers.

        Args:
            timeout: seconds for this whole exchange (a probe), else the read timeout between reads.
            deadline: ``loop.time()`` by which everything, body included, must have arrived.
        Raises:
            EngineUnreachable, EngineTimeout, EngineDisconnected, EngineBadResponse.
        """
        loop = asyncio.get_running_loop()
        if timeout is not None:
            deadline = min(deadline or NO_DEADLINE, loop.time() + timeout)
        deadline = deadline if deadline is not None else NO_DEADLINE
        head = (
            f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1")
            + self._head_tail
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        try:
            await asyncio.wait_for(self._slots.acquire(), min(self.pool_timeout, max(0.0, deadline - loop.time())))
        except TimeoutError:
            raise EngineUnreachable(
                self.name,
                reason=f"all max_connections={self._max_connections} connections busy for "
                f"pool_timeout_s={self.pool_timeout:g}",
                code="upstream_pool_exhausted",
            ) from None
        try:
            for attempt in (0, 1):
                conn = None
                while self._idle and conn is None:
                    c = self._idle.pop()
                    conn = None if c.closed else c
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(deadline)
                assert conn.transport is not None
                conn.transport.write(head + body)
                try:
                    while not conn.headers_done:
                        await conn.wait(self._wait_s(deadline))
                except _Expired:
                    conn.close()
                    raise self._timeout(deadline) from None
                except EngineDisconnected as err:
                    conn.close()
                    # A kept-alive connection the server had already closed: retry once on a fresh one.
                    if reused and attempt == 0:
                        continue
                    raise EngineDisconnected(self.name, reason=f"{self.base_url} {err.reason}") from None
                except EngineError as err:
                    conn.close()
                    raise type(err)(self.name, reason=f"{self.base_url} {err.reason}") from None
                except BaseException:
                    conn.close()
                    raise
                return H1Response(self, conn, deadline)
            raise EngineDisconnected(self.name, reason=f"{self.base_url} closed the connection before the headers")
        except BaseException:
            self._slots.release()
            raise

    def _give_back(self, conn: _Conn) -> None:
        if conn.complete and conn.keep_alive and not conn.closed and conn.error is None and not conn.chunks:
            conn.reset()
            self._idle.append(conn)
        else:
            conn.close()
        self._slots.release()

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
