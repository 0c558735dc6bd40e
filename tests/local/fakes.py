"""Small fake engines as real HTTP servers on 127.0.0.1: vLLM/SGLang (OpenAI JSON + SSE) and Ollama (NDJSON)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from local.embedded.api import GenerationChunk, GenerationRequest

JSON_REPLY = '{"name": "Zhang San", "age": 28}'


class LoopThread:
    """An asyncio loop in a daemon thread, to host servers while the test body uses blocking clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Behaviour:
    """How a fake answers; tests flip these between requests."""

    mode: str = "ok"  # ok | fail500 | hang | bad_json | die_mid_stream
    chunks: int = 3
    chunk_delay_s: float = 0.0
    json_reply: str = JSON_REPLY
    received: list[dict[str, Any]] = field(default_factory=list)
    disconnects: int = 0
    completed_streams: int = 0


class FakeServer:
    """Base: an aiohttp app on a random 127.0.0.1 port inside a :class:`LoopThread`."""

    def __init__(self, loop: LoopThread, name: str) -> None:
        self.loop = loop
        self.name = name
        self.b = Behaviour()
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> FakeServer:
        async def _start() -> int:
            self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.5)
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

    async def _misbehave(self) -> web.Response | None:
        if self.b.mode == "fail500":
            return web.json_response({"error": "boom"}, status=500)
        if self.b.mode == "hang":
            await asyncio.sleep(5)
        return None

    async def _stream(self, request: web.Request, lines: list[bytes], content_type: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": content_type})
        await resp.prepare(request)
        try:
            for i, line in enumerate(lines):
                if self.b.mode == "die_mid_stream" and i == 1:
                    request.transport.close()  # type: ignore[union-attr]
                    return resp
                await resp.write(line)
                if self.b.chunk_delay_s:
                    await asyncio.sleep(self.b.chunk_delay_s)
            await resp.write_eof()
            self.b.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.b.disconnects += 1
            raise
        return resp


class FakeOpenAI(FakeServer):
    """Speaks vLLM's/SGLang's OpenAI server protocol; answers ``[<name>] <last user text>``."""

    def __init__(self, loop: LoopThread, name: str) -> None:
        super().__init__(loop, name)
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/completions", self.completions)
        self.app.router.add_get("/health", self.health)

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(status=200 if self.b.mode != "fail500" else 500)

    def _text(self, body: dict[str, Any]) -> str:
        if body.get("response_format", {}).get("type") in ("json_object", "json_schema"):
            return self.b.json_reply
        if "messages" in body:
            return f"[{self.name}] {body['messages'][-1]['content']}"
        return f"[{self.name}] {body['prompt']}"

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "completion")

    async def _answer(self, request: web.Request, kind: str) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.b.received.append(body)
        bad = await self._misbehave()
        if bad is not None:
            return bad
        if body.get("max_tokens") == 999_999:
            return web.json_response(
                {"error": {"message": "max_tokens too large", "type": "BadRequestError", "param": None, "code": 400}},
                status=400,
            )
        text = self._text(body)
        usage = {"prompt_tokens": 5, "completion_tokens": self.b.chunks, "total_tokens": 5 + self.b.chunks}
        if not body.get("stream"):
            choice: dict[str, Any] = (
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                if kind == "chat"
                else {"index": 0, "text": text, "finish_reason": "stop"}
            )
            obj = "chat.completion" if kind == "chat" else "text_completion"
            return web.json_response(
                {"id": "x", "object": obj, "created": 1, "model": body["model"], "choices": [choice], "usage": usage}
            )
        pieces = _split(text, self.b.chunks)
        lines = []
        for i, p in enumerate(pieces):
            c: dict[str, Any] = (
                {
                    "index": 0,
                    "delta": {"content": p, **({"role": "assistant"} if i == 0 else {})},
                    "finish_reason": None,
                }
                if kind == "chat"
                else {"index": 0, "text": p, "finish_reason": None}
            )
            obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
            lines.append(
                b"data: "
                + orjson.dumps({"id": "x", "object": obj, "created": 1, "model": body["model"], "choices": [c]})
                + b"\n\n"
            )
        lines.append(b"data: [DONE]\n\n")
        return await self._stream(request, lines, "text/event-stream")


def _split(text: str, n: int) -> list[str]:
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


class FakeOllama(FakeServer):
    """Speaks Ollama's native ``/api/chat`` and ``/api/generate`` (NDJSON streaming)."""

    def __init__(self, loop: LoopThread, name: str = "ollama") -> None:
        super().__init__(loop, name)
        self.app.router.add_post("/api/chat", self.chat)
        self.app.router.add_post("/api/generate", self.generate)
        self.app.router.add_get("/api/version", self.version)

    async def version(self, _: web.Request) -> web.Response:
        return web.json_response({"version": "0.12.0"})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "chat")

    async def generate(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "generate")

    async def _answer(self, request: web.Request, kind: str) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.b.received.append(body)
        bad = await self._misbehave()
        if bad is not None:
            return bad
        if body["model"] != "llm-deploy":
            return web.json_response({"error": f"model '{body['model']}' not found"}, status=404)
        text = (
            self.b.json_reply
            if body.get("format")
            else f"[ollama] {body['messages'][-1]['content'] if kind == 'chat' else body['prompt']}"
        )

        def piece(t: str) -> dict[str, Any]:
            return {"message": {"role": "assistant", "content": t}} if kind == "chat" else {"response": t}

        final = {"done": True, "done_reason": "stop", "prompt_eval_count": 7, "eval_count": 3, **piece("")}
        if not body.get("stream", True):
            return web.json_response(
                {
                    "model": body["model"],
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": 7,
                    "eval_count": 3,
                    **piece(text),
                }
            )
        lines = [
            orjson.dumps({"model": body["model"], "done": False, **piece(p)}) + b"\n"
            for p in _split(text, self.b.chunks)
        ]
        lines.append(orjson.dumps(final) + b"\n")
        return await self._stream(request, lines, "application/x-ndjson")


class ScriptedEmbedded:
    """A tiny in-process implementation of ``EmbeddedEngineProtocol`` whose answers come from a list (for the
    structured-output retry loop and adapter tests)."""

    def __init__(self, answers: list[str] | Callable[[GenerationRequest], str], name: str = "scripted") -> None:
        self.answers = answers
        self.requests: list[GenerationRequest] = []
        self._ready = False
        self._name = name

    @property
    def model_name(self) -> str:
        return self._name

    async def start(self) -> None:
        self._ready = True

    async def stop(self) -> None:
        self._ready = False

    def ready(self) -> bool:
        return self._ready

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        self.requests.append(request)
        if callable(self.answers):
            text = self.answers(request)
        else:
            text = self.answers[min(len(self.requests), len(self.answers)) - 1]
        words = text.split(" ")
        for i, w in enumerate(words):
            await asyncio.sleep(0)
            last = i == len(words) - 1
            yield GenerationChunk(
                (w if i == 0 else " " + w),
                finish_reason="stop" if last else None,
                prompt_tokens=4 if last else 0,
                completion_tokens=len(words) if last else 0,
            )


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()
