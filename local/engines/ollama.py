"""Ollama through its native API: ``/api/chat`` and ``/api/generate``, NDJSON streams translated to OpenAI SSE,
``format`` for JSON schemas and ``options`` for sampling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from config.local_section import EngineSpec
from local.engines.base import (
    SSE_DONE,
    Call,
    Engine,
    Result,
    chat_messages,
    dumps,
    new_id,
    sse_event,
    usage,
)
from local.engines.http import AiohttpResponse, check_status, make_session, send
from local.errors import EngineBadResponse, EngineError, EngineUnreachable
from local.protocol import ChatCompletionRequest, CompletionRequest
from wire import build

PATHS = {"chat": "/api/chat", "completion": "/api/generate"}


class OllamaEngine(Engine):
    """An Ollama server (``ollama serve``)."""

    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise EngineUnreachable(self.name, reason="not started")
        return self._session

    @property
    def enforces_deadline(self) -> bool:
        return True

    async def start(self) -> None:
        self._session = make_session(self.spec)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ready(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            resp = await send(
                self.spec, self.session, "GET", "/api/version", b"", loop.time() + self.spec.connect_timeout_s
            )
        except EngineError:
            return False
        try:
            await resp.read(1 << 16)
        except EngineError:
            return False
        finally:
            resp.release()
        return resp.status == 200

    async def _post(self, call: Call, stream: bool) -> AiohttpResponse:
        resp = await send(
            self.spec, self.session, "POST", PATHS[call.kind], orjson.dumps(self.payload(call, stream)), call.deadline
        )
        await check_status(self.name, resp)
        return resp

    def payload(self, call: Call, stream: bool) -> dict[str, Any]:
        """The native request for an OpenAI request."""
        req = call.request
        options: dict[str, Any] = {"num_predict": call.max_tokens}
        if req.temperature is not None:
            options["temperature"] = req.temperature
        if req.top_p is not None:
            options["top_p"] = req.top_p
        if req.seed is not None:
            options["seed"] = req.seed
        if req.stop is not None:
            options["stop"] = req.stop_list()
        body: dict[str, Any] = {"model": self.spec.upstream_model(call.model), "stream": stream, "options": options}
        if isinstance(req, ChatCompletionRequest):
            body["messages"] = chat_messages(call)
        else:
            assert isinstance(req, CompletionRequest)
            body["prompt"] = req.prompt_text()
        if call.schema is not None:
            # Ollama takes "json" for any object, or the schema itself to constrain decoding.
            body["format"] = "json" if call.schema == {"type": "object"} else call.schema
        return body

    @staticmethod
    def _piece(kind: str, obj: dict[str, Any]) -> str:
        if kind == "chat":
            return str((obj.get("message") or {}).get("content") or "")
        return str(obj.get("response") or "")

    async def complete(self, call: Call) -> Result:
        resp = await self._post(call, False)
        try:
            raw = await resp.read()
        finally:
            resp.release()
        try:
            data = orjson.loads(raw)
            text = self._piece(call.kind, data)
        except (orjson.JSONDecodeError, AttributeError) as err:
            raise EngineBadResponse(self.name, reason="answered a body that is not Ollama JSON") from err
        finish = "length" if data.get("done_reason") == "length" else "stop"
        p, c = int(data.get("prompt_eval_count") or 0), int(data.get("eval_count") or 0)
        return Result(dumps(build.full_response(call.kind, call.model, text, finish, p, c)), text, finish, p, c)

    async def stream(self, call: Call) -> AsyncIterator[bytes]:
        resp = await self._post(call, True)
        rid, first = new_id(call.kind), True
        try:
            async for line in resp.lines():  # NDJSON: one object per line
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as err:
                    raise EngineBadResponse(self.name, reason=f"sent a line that is not JSON: {line[:80]!r}") from err
                if obj.get("error"):
                    raise EngineBadResponse(self.name, reason=f"stream error: {obj['error']}")
                piece = self._piece(call.kind, obj)
                if piece or first:
                    yield sse_event(build.chunk(call.kind, rid, call.model, piece, first=first))
                    first = False
                if obj.get("done"):
                    finish = "length" if obj.get("done_reason") == "length" else "stop"
                    p, c = int(obj.get("prompt_eval_count") or 0), int(obj.get("eval_count") or 0)
                    call.prompt_tokens, call.completion_tokens = p, c
                    yield sse_event(build.chunk(call.kind, rid, call.model, "", finish))
                    if call.request.include_usage:
                        yield sse_event(build.chunk(call.kind, rid, call.model, None, usage_=usage(p, c)))
                    yield SSE_DONE
                    return
            raise EngineBadResponse(self.name, reason="stream ended without a done message")
        finally:
            resp.release()
