"""A small real HTTP upstream that speaks vLLM's OpenAI API and misbehaves on request: refuse (a closed port), hang,
trickle, cut, 5xx, malformed JSON, in-band error events, huge bodies, stalled health checks, answers cut at
max_tokens. Runs on 127.0.0.1:0 inside a :class:`tests.local.fakes.LoopThread`.

When well-behaved it answers like vLLM 0.32 does: a role-only first chunk, a usage chunk only when
``stream_options.include_usage`` is set, ``n`` choices, ``max_tokens`` honoured, ``/v1/models`` with
``max_model_len``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.local.fakes import LoopThread

CHUNK = b"x" * (1 << 16)


@dataclass
class Faults:
    """What the next requests get; tests set these."""

    mode: str = "ok"  # ok|hang|trickle|cut|fail503|malformed|error_first|error_mid|huge|huge_error|huge_stream|length
    served: list[str] = field(default_factory=lambda: ["up-model"])
    max_model_len: int = 2048
    health: str = "ok"  # ok | stall | fail
    reply: str = "hello there from the upstream"
    huge_bytes: int = 200 * 1_048_576
    received: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    sent: int = 0  # body bytes written by the last huge answer
    cancelled: int = 0
    finished: int = 0


class FaultUpstream:
    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop
        self.f = Faults()
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/completions", self.chat)
        self.app.router.add_get("/health", self.health)
        self.app.router.add_get("/v1/models", self.models)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> FaultUpstream:
        async def _start() -> int:
            self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.2, handler_cancellation=True)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        self.port = self.loop.run(_start())
        return self

    def stop(self) -> None:
        if self.runner is not None:
            self.loop.run(self.runner.cleanup())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def health(self, request: web.Request) -> web.StreamResponse:
        if self.f.health == "fail":
            return web.Response(status=500)
        if self.f.health == "stall":
            resp = web.StreamResponse(status=200)
            resp.content_length = 100
            await resp.prepare(request)
            await asyncio.sleep(3600)  # headers sent, body never comes
        return web.Response(status=200)

    async def models(self, _: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 1, "owned_by": "vllm", "max_model_len": self.f.max_model_len}
            for m in self.f.served
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.f.received.append(body)
        self.f.in_flight += 1
        try:
            resp = await self._answer(request, body)
            self.f.finished += 1
            return resp
        except (asyncio.CancelledError, ConnectionResetError):
            self.f.cancelled += 1
            raise
        finally:
            self.f.in_flight -= 1

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        mode = self.f.mode
        chat = "messages" in body
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "fail503":
            return web.json_response(
                {"error": {"message": "overloaded", "type": "ServiceUnavailable", "param": None, "code": 503}},
                status=503,
                headers={"Retry-After": "7"},
            )
        if mode == "huge_error":
            return await self._bytes(request, 500, self.f.huge_bytes)
        if mode == "malformed" and not body.get("stream"):
            return web.Response(body=b'{"id": "x", "choices": [', content_type="application/json")
        if mode == "huge" and not body.get("stream"):
            return await self._bytes(request, 200, self.f.huge_bytes)
        if mode == "trickle" and not body.get("stream"):
            resp = web.StreamResponse(status=200)
            resp.content_length = 10_000
            resp.content_type = "application/json"
            await resp.prepare(request)
            for _ in range(10_000):
                await resp.write(b" ")
                await asyncio.sleep(1.0)
            return resp
        n = int(body.get("n") or 1)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        # Plain replies repeat up to max_tokens (then finish_reason "length"); a JSON reply is sent once.
        words = self.f.reply if self.f.reply.startswith("{") else (self.f.reply + " ") * 100
        tokens = [w for w in words.split(" ") if w][:max_tokens]
        finish = "length" if mode == "length" or len(tokens) >= max_tokens else "stop"
        if mode == "length":
            tokens = ['{"name":', ' "Zh']
        model = body.get("model")
        if not body.get("stream"):
            text = " ".join(tokens) if mode != "length" else "".join(tokens)
            choices = [
                {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                if chat
                else {"index": i, "text": text, "finish_reason": finish}
                for i in range(n)
            ]
            usage = {"prompt_tokens": 9, "completion_tokens": len(tokens) * n, "total_tokens": 9 + len(tokens) * n}
            obj = "chat.completion" if chat else "text_completion"
            return web.json_response(
                {"id": "cmpl-1", "object": obj, "created": 1, "model": model, "choices": choices, "usage": usage}
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        kind_obj = "chat.completion.chunk" if chat else "text_completion"

        def ev(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            o = {"id": "c", "object": kind_obj, "created": 1, "model": model, "choices": choices, **extra}
            return b"data: " + orjson.dumps(o) + b"\n\n"

        def piece(i: int, text: str | None, fin: str | None = None, role: bool = False) -> dict[str, Any]:
            if chat:
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {"content": text}
                return {"index": i, "delta": delta, "logprobs": None, "finish_reason": fin}
            return {"index": i, "text": text or "", "logprobs": None, "finish_reason": fin}

        if mode == "malformed":
            await resp.write(b"data: {not json\n\n")
            await resp.write_eof()
            return resp
        if mode == "error_first":
            await resp.write(
                b'data: {"error": {"message": "engine dead", "type": "InternalServerError", "code": 500}}\n\n'
            )
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        for i in range(n):
            await resp.write(ev([piece(i, None, role=True)]))
        if mode == "huge_stream":
            self.f.sent = 0
            event = ev([piece(0, "x" * 65_000)])
            while self.f.sent < self.f.huge_bytes:
                await resp.write(event)
                self.f.sent += len(event)
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        for j, tok in enumerate(tokens):
            if mode == "trickle":
                for b in ev([piece(0, tok)]):
                    await resp.write(bytes([b]))
                    await asyncio.sleep(0.05)
                continue
            if mode == "cut" and j == 2:
                request.transport.close()  # type: ignore[union-attr]
                return resp
            if mode == "error_mid" and j == 2:
                await resp.write(
                    b'data: {"error": {"message": "out of KV cache", "type": "InternalServerError", "code": 500}}\n\n'
                )
                await resp.write(b"data: [DONE]\n\n")
                await resp.write_eof()
                return resp
            for i in range(n):
                await resp.write(ev([piece(i, tok if j == 0 or mode == "length" else " " + tok)]))
        for i in range(n):
            await resp.write(ev([piece(i, "", finish)]))
        so = body.get("stream_options") or {}
        if so.get("include_usage"):
            ct = len(tokens) * n
            await resp.write(ev([], usage={"prompt_tokens": 9, "completion_tokens": ct, "total_tokens": 9 + ct}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _bytes(self, request: web.Request, status: int, size: int) -> web.StreamResponse:
        resp = web.StreamResponse(status=status)
        resp.content_length = size
        resp.content_type = "application/json"
        await resp.prepare(request)
        self.f.sent = 0
        while self.f.sent < size:
            part = CHUNK[: min(len(CHUNK), size - self.f.sent)]
            await resp.write(part)
            self.f.sent += len(part)
        await resp.write_eof()
        return resp
