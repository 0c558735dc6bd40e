"""Timeouts, circuit breaker, failover (before the first byte) and client disconnects, against fake engines."""

from __future__ import annotations

import time

import openai
import pytest

from tests.local.fakes import FakeOpenAI, LoopThread, closed_port, wait_until
from tests.local.gateway import KEY, RunningGateway, custom, http_engine

MSG = [{"role": "user", "content": "hi"}]


def sdk(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def test_read_timeout_is_504_naming_the_engine(loop_thread: LoopThread) -> None:
    slow = FakeOpenAI(loop_thread, "slow").start()
    slow.b.mode = "hang"
    try:
        with RunningGateway(custom(http_engine("slow", "vllm", slow.url, read_timeout_s=0.3))) as gw:
            t0 = time.monotonic()
            r = gw.post("/v1/chat/completions", {"model": "m", "messages": MSG})
            assert time.monotonic() - t0 < 5
            assert r.status_code == 504
            err = r.json()["error"]
            assert (
                err["code"] == "upstream_timeout"
                and "'slow'" in err["message"]
                and "read_timeout_s=0.3" in err["message"]
            )
    finally:
        slow.stop()


def test_breaker_opens_then_probes_after_cooldown(loop_thread: LoopThread) -> None:
    port = closed_port()
    cfg = custom(
        http_engine("down", "vllm", f"http://127.0.0.1:{port}"),
        breaker={"failure_threshold": 2, "cooldown_s": 0.5},
    )
    with RunningGateway(cfg) as gw:
        for _ in range(2):
            r = gw.post("/v1/chat/completions", {"model": "m", "messages": MSG})
            assert r.status_code == 503 and "unreachable" in r.json()["error"]["message"]
        r = gw.post("/v1/chat/completions", {"model": "m", "messages": MSG})
        assert r.status_code == 503 and "circuit open" in r.json()["error"]["message"]
        assert 'llm_gateway_breaker_state{engine="down"} 2.0' in gw.get("/metrics").text
        assert gw.get("/ready").status_code == 503
        # After the cool-down the engine comes back: the probe succeeds and the breaker closes.
        fake = FakeOpenAI(loop_thread, "down")
        fake.app.freeze()
        from aiohttp import web

        async def _start() -> web.AppRunner:
            runner = web.AppRunner(fake.app, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            return runner

        runner = loop_thread.run(_start())
        try:
            time.sleep(0.6)
            r = gw.post("/v1/chat/completions", {"model": "m", "messages": MSG})
            assert r.status_code == 200, r.text
            assert 'llm_gateway_breaker_state{engine="down"} 0.0' in gw.get("/metrics").text
        finally:
            loop_thread.run(runner.cleanup())


@pytest.mark.parametrize("failure", ["refused", "fail500"])
def test_failover_non_streaming_and_streaming(loop_thread: LoopThread, failure: str) -> None:
    backup = FakeOpenAI(loop_thread, "backup").start()
    bad = FakeOpenAI(loop_thread, "primary").start()
    bad.b.mode = "fail500"
    url = f"http://127.0.0.1:{closed_port()}" if failure == "refused" else bad.url
    try:
        with RunningGateway(
            custom(http_engine("primary", "vllm", url), http_engine("backup", "vllm", backup.url))
        ) as gw:
            c = sdk(gw)
            out = c.chat.completions.create(model="m", messages=MSG)  # type: ignore[arg-type]
            assert out.choices[0].message.content == "[backup] hi"
            stream = c.chat.completions.create(model="m", messages=MSG, stream=True)  # type: ignore[arg-type]
            assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == "[backup] hi"
            assert 'llm_gateway_errors_total{engine="primary"' in gw.get("/metrics").text
    finally:
        backup.stop()
        bad.stop()


def test_all_engines_failing_is_502_listing_each(loop_thread: LoopThread) -> None:
    a = FakeOpenAI(loop_thread, "a").start()
    a.b.mode = "fail500"
    try:
        cfg = custom(http_engine("a", "vllm", a.url), http_engine("b", "sglang", f"http://127.0.0.1:{closed_port()}"))
        with RunningGateway(cfg) as gw:
            r = gw.post("/v1/chat/completions", {"model": "m", "messages": MSG, "stream": True})
            assert r.status_code == 503
            msg = r.json()["error"]["message"]
            assert "engine 'a' answered HTTP 500" in msg and "engine 'b' unreachable" in msg
    finally:
        a.stop()


def test_failure_after_first_byte_ends_stream_with_error_event(loop_thread: LoopThread) -> None:
    a = FakeOpenAI(loop_thread, "a").start()
    a.b.mode, a.b.chunks = "die_mid_stream", 5
    try:
        with RunningGateway(custom(http_engine("a", "vllm", a.url))) as gw:
            r = gw.post("/v1/chat/completions", {"model": "m", "messages": MSG, "stream": True})
            assert r.status_code == 200
            events = [line for line in r.text.split("\n\n") if line]
            assert events[0].startswith("data: {") and '"error"' in events[-1] and "mid-stream" in events[-1]
    finally:
        a.stop()


def test_client_disconnect_cancels_upstream(loop_thread: LoopThread) -> None:
    slow = FakeOpenAI(loop_thread, "slow").start()
    slow.b.chunks, slow.b.chunk_delay_s = 200, 0.05
    try:
        with RunningGateway(custom(http_engine("slow", "vllm", slow.url))) as gw:
            body = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}], "stream": True}
            with gw.post("/v1/chat/completions", body, stream=True) as r:
                it = r.iter_content(chunk_size=None)
                next(it)
                next(it)
            # The stream would take 10 s; the fake must see the connection dropped well before that.
            assert wait_until(lambda: slow.b.disconnects == 1, timeout=5)
            assert slow.b.completed_streams == 0
            assert wait_until(lambda: "llm_gateway_in_flight_requests 0.0" in gw.get("/metrics").text)
    finally:
        slow.stop()
