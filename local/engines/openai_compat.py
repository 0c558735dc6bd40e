"""vLLM and SGLang: both serve the OpenAI API, so requests and SSE streams pass through as bytes.

The client's bytes are forwarded untouched unless the gateway must change the request: the public model name mapped
to the engine's (``upstream_models``), ``local.default_max_tokens`` when the client set no limit (vLLM would otherwise
generate up to the context length), ``stream_options.include_usage`` so token metrics are exact (the router strips
that usage chunk again when the client did not ask for it), and structured-output retry feedback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from config.local_section import EngineSpec
from local.engines.base import Call, Engine, Result
from local.engines.h1 import H1Pool
from local.engines.http import EngineResponse, check_status, engine_headers, make_session, send
from local.errors import EngineBadResponse, EngineError, EngineUnreachable

PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}


class OpenAICompatEngine(Engine):
    """An engine speaking the OpenAI HTTP API (vLLM's and SGLang's servers)."""

    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        self._pool: H1Pool | None = None
        self._session: aiohttp.ClientSession | None = None
        self._model_info: dict[str, dict[str, Any]] = {}

    @property
    def enforces_deadline(self) -> bool:
        return True

    async def start(self) -> None:
        spec = self.spec
        assert spec.base_url is not None
        if spec.base_url.startswith("http://"):
            self._pool = H1Pool(
                spec.name,
                spec.base_url,
                spec.connect_timeout_s,
                spec.read_timeout_s,
                spec.max_connections,
                engine_headers(spec),
                spec.pool_timeout_s,
                spec.max_upstream_bytes,
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

    async def _send(
        self, method: str, path: str, body: bytes, deadline: float | None = None, timeout: float | None = None
    ) -> EngineResponse:
        """Send a request; every failure is an ``EngineError`` naming the engine and the cause."""
        if self._pool is not None:
            return await self._pool.request(method, path, body, timeout, deadline)
        if self._session is None:
            raise EngineUnreachable(self.name, reason="not started")
        if timeout is not None:
            deadline = min(deadline or float("inf"), asyncio.get_running_loop().time() + timeout)
        return await send(self.spec, self._session, method, path, body, deadline)

    async def _get_json(self, path: str) -> tuple[int, Any]:
        resp = await self._send("GET", path, b"", timeout=self.spec.connect_timeout_s)
        try:
            raw = await resp.read(1 << 20)
        finally:
            resp.release()
        try:
            return resp.status, orjson.loads(raw) if resp.status == 200 else None
        except orjson.JSONDecodeError:
            return resp.status, None

    async def ready(self) -> bool:
        return (await self.readiness())[0]

    async def readiness(self) -> tuple[bool, str]:
        """``/health`` answers 200 and ``/v1/models`` lists every upstream model this engine is configured for.

        Every response is released whatever happens (a probe that stalls after its headers used to leak a slot).
        """
        try:
            status, _ = await self._get_json("/health")
            if status != 200:
                return False, f"/health answered {status}"
            status, models = await self._get_json("/v1/models")
        except EngineError as err:
            return False, err.reason
        if status == 404:
            return True, "ok (no /v1/models to check model names)"
        if status != 200 or not isinstance(models, dict) or not isinstance(models.get("data"), list):
            return False, f"/v1/models answered {status} without a model list"
        served = {m.get("id"): m for m in models["data"] if isinstance(m, dict)}
        wanted = {public: self.spec.upstream_model(public) for public in self.spec.models}
        missing = sorted(up for up in wanted.values() if up not in served)
        for public, up in wanted.items():
            if up in served and isinstance(served[up].get("max_model_len"), int):
                self._model_info[public] = {"max_model_len": served[up]["max_model_len"]}
        if missing:
            return False, f"does not serve {missing} (serves {sorted(str(k) for k in served)})"
        return True, "ok"

    def model_info(self) -> dict[str, dict[str, Any]]:
        return self._model_info

    def _payload(self, call: Call) -> bytes:
        """The request bytes: the client's own unless something must change (see the module docstring)."""
        body = call.body
        upstream = self.spec.upstream_model(call.model)
        changes: dict[str, Any] = {}
        if upstream != call.model:
            changes["model"] = upstream
        if call.extra_messages:
            changes["messages"] = [*body["messages"], *call.extra_messages]
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
            changes["max_tokens"] = call.max_tokens
        if call.stream and not call.request.include_usage:
            so = body.get("stream_options") or {}
            changes["stream_options"] = {**so, "include_usage": True}
            call.strip_usage = True
        if not changes:
            return call.raw  # the common case: forward the client's bytes untouched
        return orjson.dumps({**body, **changes})

    async def complete(self, call: Call) -> Result:
        resp = await self._send("POST", PATHS[call.kind], self._payload(call), call.deadline)
        await check_status(self.name, resp)
        try:
            raw = await resp.read()
        finally:
            resp.release()
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            text = choice["message"]["content"] if call.kind == "chat" else choice["text"]
            u = data.get("usage") or {}
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as err:
            raise EngineBadResponse(
                self.name, reason=f"answered a body that is not an OpenAI {call.kind} response"
            ) from err
        if data.get("model") != call.model:
            data["model"] = call.model
            raw = orjson.dumps(data)
        return Result(
            raw, text or "", choice.get("finish_reason"), u.get("prompt_tokens", 0), u.get("completion_tokens", 0)
        )

    async def stream(self, call: Call) -> AsyncIterator[bytes]:
        resp = await self._send("POST", PATHS[call.kind], self._payload(call), call.deadline)
        await check_status(self.name, resp)
        try:
            # Chunks are forwarded as they arrive, SSE framing included; the router looks at events, not us.
            async for chunk in resp.iter_chunks():
                yield chunk
        finally:
            # An unfinished response's connection is closed, which is how the engine learns to stop generating.
            resp.release()
