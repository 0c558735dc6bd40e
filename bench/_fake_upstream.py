"""A fake OpenAI engine with a fixed latency, for the gateway benchmarks (run as its own process).

python -m bench._fake_upstream PORT [--latency-ms 20] [--chunks 16] [--chunk-ms 0] [--cpu N]
"""

from __future__ import annotations

import argparse
import asyncio
import os

import orjson
from aiohttp import web


def make_app(latency_s: float, chunks: int, chunk_s: float) -> web.Application:
    """Chat completions answering after ``latency_s``; streams send ``chunks`` SSE events ``chunk_s`` apart."""
    body = orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " * 16}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 8, "completion_tokens": 16, "total_tokens": 24},
        }
    )
    event = (
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": "ok "}, "finish_reason": None}],
            }
        )
        + b"\n\n"
    )

    async def chat(request: web.Request) -> web.StreamResponse:
        req = orjson.loads(await request.read())
        await asyncio.sleep(latency_s)
        if not req.get("stream"):
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for _ in range(chunks):
            await resp.write(event)
            if chunk_s:
                await asyncio.sleep(chunk_s)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--latency-ms", type=float, default=20)
    p.add_argument("--chunks", type=int, default=16)
    p.add_argument("--chunk-ms", type=float, default=0)
    p.add_argument("--cpu", type=int, default=None)
    a = p.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    import uvloop

    uvloop.install()
    web.run_app(
        make_app(a.latency_ms / 1000, a.chunks, a.chunk_ms / 1000),
        host="127.0.0.1",
        port=a.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
