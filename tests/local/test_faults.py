"""Fault injection (issue 9 item 7, issue 11 item 3): a real misbehaving upstream on 127.0.0.1 behind the real
gateway, and what the official openai SDK client sees each time (status, error body, time to error), plus the
breaker, ``/ready`` and the metrics. Memory bounds are in ``test_fault_memory.py`` (gateway in a subprocess)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from tests.local.fakes import FakeOllama, LoopThread, closed_port, wait_until
from tests.local.faults import FaultUpstream
from tests.local.gateway import KEY, RunningGateway, custom, http_engine

MSG: Any = [{"role": "user", "content": "hi"}]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
RF: Any = {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}


@pytest.fixture
def up(loop_thread: LoopThread) -> Iterator[FaultUpstream]:
    u = FaultUpstream(loop_thread).start()
    yield u
    u.stop()


def engine(url: str, name: str = "vllm", **kw: Any) -> Any:
    kw.setdefault("upstream_models", {"m": "up-model"})
    return http_engine(name, "vllm", url, **kw)


def sdk(gw: RunningGateway, timeout: float = 30) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=timeout)


def metric(gw: RunningGateway, name: str, **labels: str) -> float:
    text = gw.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def status_error(fn: Any) -> tuple[openai.APIStatusError, float]:
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        fn()
    took = time.monotonic() - t0
    print(f"[time to error] HTTP {info.value.status_code} {info.value.code} after {took:.3f} s")  # for the docs
    return info.value, took


def stream_error(gw: RunningGateway, **kw: Any) -> tuple[openai.APIError, str, float]:
    """Consume a stream that fails after its first byte: the SDK raises APIError from the in-band error event."""
    t0 = time.monotonic()
    pieces: list[str] = []

    def consume() -> None:
        for ch in sdk(gw).chat.completions.create(model="m", messages=MSG, stream=True, **kw):
            if ch.choices:
                pieces.append(ch.choices[0].delta.content or "")

    with pytest.raises(openai.APIError) as info:
        consume()
    text = "".join(pieces)
    print(f"[time to error] stream error event after {time.monotonic() - t0:.3f} s: {info.value.message[:60]}")
    assert not isinstance(info.value, openai.APIStatusError)  # the status was 200: the error came in the stream
    return info.value, text, time.monotonic() - t0


# --- deadlines -----------------------------------------------------------------------------------------------------


def test_hang_is_504_within_the_deadline_and_the_upstream_is_cancelled(up: FaultUpstream) -> None:
    up.f.mode = "hang"
    cfg = custom(engine(up.url, read_timeout_s=60, request_timeout_s=1.0))
    with RunningGateway(cfg) as gw:
        err, took = status_error(lambda: sdk(gw).chat.completions.create(model="m", messages=MSG))
        assert err.status_code == 504 and err.code == "upstream_timeout" and 0.9 < took < 3
        assert "request_timeout_s=1" in err.message
        assert wait_until(lambda: up.f.cancelled == 1 and up.f.in_flight == 0)


def test_trickle_ends_with_504_and_opens_the_breaker(up: FaultUpstream) -> None:
    """One byte a second never trips read_timeout_s; the request deadline still ends it."""
    up.f.mode = "trickle"
    cfg = custom(engine(up.url, read_timeout_s=5, request_timeout_s=2.0), breaker={"failure_threshold": 1})
    with RunningGateway(cfg) as gw:
        assert gw.get("/ready").status_code == 200
        err, took = status_error(lambda: sdk(gw).chat.completions.create(model="m", messages=MSG))
        assert err.status_code == 504 and 1.9 < took < 4, (err.status_code, took)
        assert metric(gw, "llm_gateway_breaker_state", engine="vllm") == 2
        ready = gw.get("/ready")
        assert ready.status_code == 503 and "circuit open" in ready.json()["detail"]["vllm"]


def test_trickled_stream_ends_with_an_error_event_at_the_deadline(up: FaultUpstream) -> None:
    up.f.mode = "trickle"
    cfg = custom(engine(up.url, read_timeout_s=5, request_timeout_s=1.5))
    with RunningGateway(cfg) as gw:
        err, _, took = stream_error(gw)
        assert "request deadline" in err.message and 1.4 < took < 4
        assert wait_until(
            lambda: metric(gw, "llm_gateway_stream_errors_total", engine="vllm", kind="upstream_timeout") == 1
        )
        assert wait_until(lambda: metric(gw, "llm_gateway_requests_total", status="504") == 1)


def test_overall_deadline_covers_failover(up: FaultUpstream, loop_thread: LoopThread) -> None:
    second = FaultUpstream(loop_thread).start()
    up.f.mode = second.f.mode = "hang"
    try:
        cfg = custom(
            engine(up.url, "a", request_timeout_s=5),
            engine(second.url, "b", request_timeout_s=5),
            request_timeout_s=1.5,
        )
        with RunningGateway(cfg) as gw:
            err, took = status_error(lambda: sdk(gw).chat.completions.create(model="m", messages=MSG))
            assert err.status_code == 504 and took < 3
        second.f.mode = "ok"
        cfg = custom(engine(up.url, "a", request_timeout_s=0.5), engine(second.url, "b"))
        with RunningGateway(cfg) as gw:
            t0 = time.monotonic()
            out = sdk(gw).chat.completions.create(model="m", messages=MSG)
            assert out.choices[0].message.content and time.monotonic() - t0 < 2.5
            assert metric(gw, "llm_gateway_errors_total", engine="a", kind="upstream_timeout") == 1
    finally:
        second.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_client_going_away_cancels_the_upstream_request(up: FaultUpstream, stream: bool) -> None:
    """Non-streamed, or streamed but still waiting for the engine's first event."""
    up.f.mode = "hang"
    with RunningGateway(custom(engine(up.url))) as gw:
        with pytest.raises(openai.APITimeoutError):
            sdk(gw, timeout=0.5).chat.completions.create(model="m", messages=MSG, stream=stream)
        assert wait_until(lambda: up.f.cancelled == 1 and up.f.in_flight == 0, timeout=5)
        assert wait_until(lambda: metric(gw, "llm_gateway_in_flight_requests") == 0)
        assert metric(gw, "llm_gateway_requests_total", status="499") == 1


# --- failures before the first byte fail over; after it they are counted ---------------------------------------------


@pytest.mark.parametrize("mode", ["malformed", "error_first"])
def test_bad_first_event_fails_over_instead_of_reaching_the_client(
    up: FaultUpstream, loop_thread: LoopThread, mode: str
) -> None:
    up.f.mode = mode
    with RunningGateway(custom(engine(up.url))) as gw:
        err, took = status_error(lambda: list(sdk(gw).chat.completions.create(model="m", messages=MSG, stream=True)))
        assert err.status_code == 502 and took < 2
        assert "first event" in err.message or "error event" in err.message
    backup = FaultUpstream(loop_thread).start()
    try:
        with RunningGateway(custom(engine(up.url, "a"), engine(backup.url, "b"))) as gw:
            stream = sdk(gw).chat.completions.create(model="m", messages=MSG, stream=True, max_tokens=3)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "hello there from"
    finally:
        backup.stop()


def test_malformed_json_answer_is_502(up: FaultUpstream) -> None:
    up.f.mode = "malformed"
    with RunningGateway(custom(engine(up.url))) as gw:
        err, _ = status_error(lambda: sdk(gw).chat.completions.create(model="m", messages=MSG))
        assert err.status_code == 502 and err.code == "upstream_bad_response"


def test_5xx_is_failed_over_and_retry_after_is_kept(up: FaultUpstream) -> None:
    up.f.mode = "fail503"
    with RunningGateway(custom(engine(up.url))) as gw:
        err, _ = status_error(lambda: sdk(gw).chat.completions.create(model="m", messages=MSG))
        assert err.status_code == 502 and "answered HTTP 503" in err.message
        assert err.response.headers.get("retry-after") == "7"


@pytest.mark.parametrize(("mode", "kind"), [("cut", "upstream_disconnected"), ("error_mid", "upstream_error_event")])
def test_failures_after_the_first_byte_are_counted_and_open_the_breaker(
    up: FaultUpstream, mode: str, kind: str
) -> None:
    up.f.mode = mode
    cfg = custom(engine(up.url), breaker={"failure_threshold": 2, "cooldown_s": 60})
    with RunningGateway(cfg) as gw:
        for _ in range(2):
            _, text, took = stream_error(gw)
            assert text.startswith("hello") and took < 3  # the client got the first tokens, then the error
        # the client raises on the error event; the gateway books the stream a moment later, when it ends
        assert wait_until(lambda: metric(gw, "llm_gateway_stream_errors_total", engine="vllm", kind=kind) == 2)
        assert metric(gw, "llm_gateway_requests_total", status="200") == 0
        assert wait_until(lambda: metric(gw, "llm_gateway_breaker_state", engine="vllm") == 2)
        ready = gw.get("/ready")
        assert ready.status_code == 503 and ready.json()["engines"] == {"vllm": False}


# --- pool slots -----------------------------------------------------------------------------------------------------


def test_stalled_health_probe_does_not_leak_connection_slots(up: FaultUpstream) -> None:
    up.f.health = "stall"
    cfg = custom(engine(up.url, max_connections=2, connect_timeout_s=0.3))
    with RunningGateway(cfg) as gw:
        for _ in range(4):
            t0 = time.monotonic()
            assert gw.get("/ready").status_code == 503
            assert time.monotonic() - t0 < 2
        up.f.health = "ok"
        assert sdk(gw).chat.completions.create(model="m", messages=MSG).choices[0].message.content
        assert gw.get("/ready").status_code == 200


def test_a_full_pool_answers_503_after_pool_timeout(up: FaultUpstream) -> None:
    up.f.mode = "hang"
    cfg = custom(engine(up.url, max_connections=1, pool_timeout_s=0.3, request_timeout_s=3))
    with RunningGateway(cfg) as gw:
        first = threading.Thread(target=lambda: gw.post("/v1/chat/completions", {"model": "m", "messages": MSG}))
        first.start()
        assert wait_until(lambda: up.f.in_flight == 1)
        err, took = status_error(lambda: sdk(gw).chat.completions.create(model="m", messages=MSG))
        assert err.status_code == 503 and err.code == "upstream_pool_exhausted" and took < 1.5
        first.join(10)


# --- labels and /metrics --------------------------------------------------------------------------------------------


def test_metric_labels_only_take_configured_models(up: FaultUpstream) -> None:
    with RunningGateway(custom(engine(up.url))) as gw:
        for i in range(30):
            assert gw.post("/v1/chat/completions", {"model": f"junk-{i}", "messages": MSG}).status_code == 404
        text = gw.get("/metrics").text
        assert "junk-" not in text
        assert metric(gw, "llm_gateway_requests_total", model="other", status="404") == 30


def test_metrics_can_require_the_key(up: FaultUpstream) -> None:
    with RunningGateway(custom(engine(up.url), metrics_require_key=True)) as gw:
        assert gw.get("/metrics", key=None).status_code == 401
        assert gw.get("/metrics").status_code == 200
    with RunningGateway(custom(engine(up.url))) as gw:
        assert gw.get("/metrics", key=None).status_code == 200


# --- issue 11: what the real vLLM exposed ---------------------------------------------------------------------------


def test_default_max_tokens_reaches_vllm_on_every_route(up: FaultUpstream) -> None:
    with RunningGateway(custom(engine(up.url), default_max_tokens=5)) as gw:
        c = sdk(gw)
        c.chat.completions.create(model="m", messages=MSG)
        c.completions.create(model="m", prompt="x")
        list(c.chat.completions.create(model="m", messages=MSG, stream=True))
        assert gw.post("/generate", {"prompt": "x"}).status_code == 200
        assert [b.get("max_tokens") for b in up.f.received] == [5, 5, 5, 5]
        c.chat.completions.create(model="m", messages=MSG, max_tokens=2)
        c.chat.completions.create(model="m", messages=MSG, max_completion_tokens=3)
        assert up.f.received[-2]["max_tokens"] == 2
        assert up.f.received[-1]["max_completion_tokens"] == 3 and "max_tokens" not in up.f.received[-1]


def test_streams_are_renamed_and_usage_is_exact_without_include_usage(up: FaultUpstream) -> None:
    with RunningGateway(custom(engine(up.url))) as gw:
        chunks = list(sdk(gw).chat.completions.create(model="m", messages=MSG, stream=True, max_tokens=4))
        assert {c.model for c in chunks} == {"m"}  # never the upstream's "up-model"
        assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)  # injected usage stripped
        assert up.f.received[-1]["stream_options"] == {"include_usage": True}
        assert wait_until(lambda: metric(gw, "llm_gateway_tokens_total", kind="completion") == 4)
        assert metric(gw, "llm_gateway_tokens_total", kind="prompt") == 9
        chunks = list(
            sdk(gw).chat.completions.create(
                model="m", messages=MSG, stream=True, max_tokens=3, stream_options={"include_usage": True}
            )
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
        assert wait_until(lambda: metric(gw, "llm_gateway_tokens_total", kind="completion") == 7)
        out = sdk(gw).chat.completions.create(model="m", messages=MSG, max_tokens=2)
        assert out.model == "m"


def test_ready_checks_the_engine_serves_its_models_and_models_keep_max_model_len(up: FaultUpstream) -> None:
    with RunningGateway(custom(engine(up.url))) as gw:
        assert gw.get("/ready").status_code == 200
        models = sdk(gw).models.list().data
        assert [(m.id, getattr(m, "max_model_len", None)) for m in models] == [("m", 2048)]
        up.f.served = ["something-else"]
        ready = gw.get("/ready")
        assert ready.status_code == 503 and "does not serve ['up-model']" in ready.json()["detail"]["vllm"]


def test_structured_output_cut_at_max_tokens_is_400_without_retries(up: FaultUpstream) -> None:
    up.f.mode = "length"
    with RunningGateway(custom(engine(up.url), structured_retries=2)) as gw:
        err, _ = status_error(
            lambda: sdk(gw).chat.completions.create(model="m", messages=MSG, response_format=RF, max_tokens=5)
        )
        assert err.status_code == 400 and err.code == "structured_output_truncated" and "max_tokens=5" in err.message
        assert len(up.f.received) == 1  # no retry: a longer answer cannot come back under the same limit
        err2, text, _ = stream_error(gw, response_format=RF, max_tokens=5)
        assert text == '{"name": "Zh' and "max_tokens=5" in err2.message
        assert metric(gw, "llm_gateway_breaker_state", engine="vllm") == 0


def test_structured_streams_are_validated_before_done(up: FaultUpstream) -> None:
    with RunningGateway(custom(engine(up.url))) as gw:
        err, text, _ = stream_error(gw, response_format=RF, max_tokens=1000)  # plain text is not the schema's JSON
        assert text.startswith("hello") and "does not match response_format" in err.message
        up.f.reply = '{"name": "Ann"}'
        stream = sdk(gw).chat.completions.create(
            model="m", messages=MSG, stream=True, response_format=RF, max_tokens=20
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == '{"name": "Ann"}'


def test_n_is_passed_to_engines_that_support_it(up: FaultUpstream, loop_thread: LoopThread) -> None:
    with RunningGateway(custom(engine(up.url))) as gw:
        out = sdk(gw).chat.completions.create(model="m", messages=MSG, n=2, max_tokens=2)
        assert [c.index for c in out.choices] == [0, 1] and up.f.received[-1]["n"] == 2
    ollama = FakeOllama(loop_thread).start()
    try:
        cfg = custom(http_engine("ollama", "ollama", ollama.url, upstream_models={"m": "llm-deploy"}))
        with RunningGateway(cfg) as gw:
            err, _ = status_error(lambda: sdk(gw).chat.completions.create(model="m", messages=MSG, n=2))
            assert err.status_code == 400 and err.param == "n" and "one choice" in err.message
    finally:
        ollama.stop()


def test_refused_connection_is_503_quickly() -> None:
    with RunningGateway(custom(engine(f"http://127.0.0.1:{closed_port()}"))) as gw:
        err, took = status_error(lambda: sdk(gw).chat.completions.create(model="m", messages=MSG))
        assert err.status_code == 503 and err.code == "upstream_unreachable" and took < 1
        assert re.search(r"unreachable at http://127\.0\.0\.1:\d+", err.message)
        assert requests.get(gw.url + "/health", timeout=5).status_code == 200
