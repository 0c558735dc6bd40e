"""vLLM and SGLang: both serve the OpenAI API, so requests and SSE streams pass through as bytes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp
import orjson

from config.local_section import EngineSpec
from local.engines.base import Call, Engine, Result, sse_error
from local.engines.h1 import H1Pool, UpstreamClosed, UpstreamConnectError, UpstreamTimeout
from local.engines.http import make_session, transport_error
from local.errors import EngineError, UpstreamRejected

PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}
USAGE_MARK = b'"usage":{'
SNIPPET = 300


class _Response(Protocol):
    status: int

    async def read(self) -> bytes: ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    @property
    def complete(self) -> bool: ...

    def release(self) -> None: ...


class _AiohttpResponse:
    """The same small interface over aiohttp, for https:// engines (the fast client speaks plain HTTP only)."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status

    async def read(self) -> bytes:
        return await self._resp.read()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._resp.content.iter_any():
            yield chunk

    @property
    def complete(self) -> bool:
        return self._resp.content.at_eof()

    def release(self) -> None:
        if self.complete:
            self._resp.release()
        else:
            self._resp.close()


class OpenAICompatEngine(Engine):
    """An engine speaking the OpenAI HTTP API (vLLM's and SGLang's servers)."""

    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        self._pool: H1Pool | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        spec = self.spec
        assert spec.base_url is not None
        if spec.base_url.startswith("http://"):
            headers = {"Content-Type": "application/json", "Accept": "*/*"}
            key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
            if key:
                headers["Authorization"] = f"Bearer {key}"
            self._pool = H1Pool(
                spec.base_url, spec.connect_timeout_s, spec.read_timeout_s, spec.max_connections, headers
            )
        else:
            self._session = make_session(spec)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send(self, method: str, path: str, body: bytes, timeout: float | None = None) -> _Response:
        """Send a request; transport failures become ``EngineError`` naming the engine and the cause."""
        try:
            if self._pool is not None:
                return await self._pool.request(method, path, body, timeout)
            if self._session is None:
                raise EngineError(self.name, 503, "not started")
            if timeout:
                resp = await self._session.request(
                    method, path, data=body, timeout=aiohttp.ClientTimeout(total=timeout)
                )
            else:
                resp = await self._session.request(method, path, data=body)
            return _AiohttpResponse(resp)
        except (
            TimeoutError,
            UpstreamConnectError,
            UpstreamTimeout,
            UpstreamClosed,
            aiohttp.ClientError,
            OSError,
        ) as err:
            raise self.transport_error(err) from err

    def transport_error(self, err: BaseException) -> EngineError:
        return transport_error(self.spec, err)

    async def _check(self, resp: _Response) -> None:
        """Raise for a non-200 answer: 4xx (bad request) goes to the client, 429/5xx may fail over."""
        if resp.status == 200:
            return
        try:
            body = await resp.read()
        finally:
            resp.release()
        if 400 <= resp.status < 500 and resp.status != 429:
            raise UpstreamRejected(resp.status, body)
        snippet = body[:SNIPPET].decode(errors="replace")
        raise EngineError(self.name, 502 if resp.status != 429 else 503, f"answered HTTP {resp.status}: {snippet}")

    async def ready(self) -> bool:
        try:
            resp = await self._send("GET", "/health", b"", self.spec.connect_timeout_s)
            await resp.read()
            resp.release()
            return resp.status == 200
        except EngineError:
            return False

    def _payload(self, call: Call) -> bytes:
        upstream = self.spec.upstream_model(call.model)
        if upstream == call.model and not call.extra_messages:
            return call.raw  # the common case: forward the client's bytes untouched
        body: dict[str, Any] = dict(call.body)
        body["model"] = upstream
        if call.extra_messages:
            body["messages"] = [*body["messages"], *call.extra_messages]
        return orjson.dumps(body)

    async def complete(self, call: Call) -> Result:
        resp = await self._send("POST", PATHS[call.kind], self._payload(call))
        await self._check(resp)
        try:
            raw = await resp.read()
        except (TimeoutError, UpstreamTimeout, UpstreamClosed, aiohttp.ClientError, OSError) as err:
            raise self.transport_error(err) from err
        finally:
            resp.release()
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            text = choice["message"]["content"] if call.kind == "chat" else choice["text"]
            u = data.get("usage") or {}
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as err:
            raise EngineError(self.name, 502, f"answered a body that is not an OpenAI {call.kind} response") from err
        if data.get("model") != call.model:
            data["model"] = call.model
            raw = orjson.dumps(data)
        return Result(
            raw, text or "", choice.get("finish_reason"), u.get("prompt_tokens", 0), u.get("completion_tokens", 0)
        )

    async def stream(self, call: Call) -> AsyncIterator[bytes]:
        resp = await self._send("POST", PATHS[call.kind], self._payload(call))
        await self._check(resp)
        started = False
        try:
            # Chunks are forwarded as they arrive, SSE framing included: no parse, no re-serialisation.
            async for chunk in resp.iter_chunks():
                started = True
                # Token metrics without parsing: one event per token unless the engine sends usage.
                call.completion_tokens += chunk.count(b"data: {")
                if USAGE_MARK in chunk:
                    counted = usage_from_sse(chunk)
                    if counted is not None:
                        call.prompt_tokens, call.completion_tokens = counted
                yield chunk
        except (TimeoutError, UpstreamTimeout, UpstreamClosed, aiohttp.ClientError, OSError) as err:
            e = self.transport_error(err)
            if not started:
                raise e from err
            yield sse_error(f"engine {self.name!r} failed mid-stream: {e.reason}", code=e.code)
        finally:
            # An unfinished response's connection is closed, which is how the engine learns to stop generating.
            resp.release()


def usage_from_sse(chunk: bytes) -> tuple[int, int] | None:
    """Prompt/completion token counts from an SSE chunk carrying a ``usage`` object, if any."""
    if USAGE_MARK not in chunk:
        return None
    for line in chunk.split(b"\n"):
        if line.startswith(b"data: {") and USAGE_MARK in line:
            try:
                u = orjson.loads(line[6:]).get("usage") or {}
                return int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))
            except (orjson.JSONDecodeError, ValueError, AttributeError):
                return None
    return None
