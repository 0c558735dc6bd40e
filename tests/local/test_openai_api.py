"""The official openai SDK against the gateway over fake vLLM (default) and SGLang (structured) engines."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import orjson
import pytest
import requests

from tests.local.fakes import JSON_REPLY, FakeOpenAI, LoopThread
from tests.local.gateway import KEY, RunningGateway, custom, http_engine

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture(scope="module")
def stack(loop_thread: LoopThread) -> Iterator[tuple[RunningGateway, FakeOpenAI, FakeOpenAI]]:
    vllm = FakeOpenAI(loop_thread, "vllm").start()
    sglang = FakeOpenAI(loop_thread, "sglang").start()
    cfg = custom(
        http_engine("vllm", "vllm", vllm.url),
        http_engine("sglang", "sglang", sglang.url, roles=["structured"]),
    )
    with RunningGateway(cfg) as gw:
        yield gw, vllm, sglang
    vllm.stop()
    sglang.stop()


@pytest.fixture
def client(stack: tuple[RunningGateway, FakeOpenAI, FakeOpenAI]) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack[0].url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def test_chat_goes_to_default_engine(
    client: openai.OpenAI, stack: tuple[RunningGateway, FakeOpenAI, FakeOpenAI]
) -> None:
    _, vllm, sglang = stack
    before = len(sglang.b.received)
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello there"}], max_tokens=8)
    assert out.choices[0].message.content == "[vllm] hello there"
    assert out.usage is not None and out.usage.completion_tokens == 3
    assert vllm.b.received[-1]["max_tokens"] == 8
    assert len(sglang.b.received) == before


def test_completions(client: openai.OpenAI) -> None:
    out = client.completions.create(model="m", prompt="say hi", max_tokens=4)
    assert out.choices[0].text == "[vllm] say hi"


def test_streaming_passes_sse_through(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "stream me"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "[vllm] stream me"


def test_streaming_completions(client: openai.OpenAI) -> None:
    stream = client.completions.create(model="m", prompt="abc", stream=True)
    assert "".join(c.choices[0].text for c in stream) == "[vllm] abc"


def test_json_schema_goes_to_structured_engine(
    client: openai.OpenAI, stack: tuple[RunningGateway, FakeOpenAI, FakeOpenAI]
) -> None:
    _, _, sglang = stack
    out = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "who?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}},
    )
    assert orjson.loads(out.choices[0].message.content or "") == orjson.loads(JSON_REPLY)
    assert sglang.b.received[-1]["response_format"]["json_schema"]["schema"] == SCHEMA


def test_enforcing_engine_invalid_output_is_never_a_success(
    client: openai.OpenAI, stack: tuple[RunningGateway, FakeOpenAI, FakeOpenAI]
) -> None:
    _, _, sglang = stack
    sglang.b.json_reply = '{"name": "Zhang San"}'  # misses "age"
    try:
        n = len(sglang.b.received)
        with pytest.raises(openai.APIStatusError) as exc:
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "who?"}],
                response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}},
            )
        # asked once, then re-asked local.structured_retries=2 times with the validation error
        assert len(sglang.b.received) - n == 3
        assert exc.value.status_code == 502
        err = exc.value.response.json()["error"]
        assert err["code"] == "invalid_structured_output" and "'age' is a required property" in err["message"]
    finally:
        sglang.b.json_reply = JSON_REPLY


def test_models_and_generate(stack: tuple[RunningGateway, FakeOpenAI, FakeOpenAI], client: openai.OpenAI) -> None:
    gw = stack[0]
    assert [m.id for m in client.models.list()] == ["m"]
    # The reference guide's client call, as written there.
    r = requests.post(
        gw.url + "/generate", json={"prompt": "你好"}, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )
    assert r.status_code == 200 and r.json() == {"text": "[vllm] 你好"}


def test_health_ready_metrics(stack: tuple[RunningGateway, FakeOpenAI, FakeOpenAI], client: openai.OpenAI) -> None:
    gw = stack[0]
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    # time to first token is a stream's metric: one stream, so the test does not lean on an earlier test's
    for _ in client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True):
        pass
    assert gw.get("/health", key=None).json() == {"status": "ok"}
    ready = gw.get("/ready", key=None)
    assert ready.status_code == 200 and ready.json()["engines"] == {"vllm": True, "sglang": True}
    text = gw.get("/metrics", key=None).text
    assert 'llm_gateway_requests_total{engine="vllm",model="m",route="chat",status="200"}' in text
    assert 'llm_gateway_tokens_total{engine="vllm",kind="completion",model="m"}' in text
    assert "llm_gateway_time_to_first_token_seconds_bucket" in text
    assert 'llm_gateway_breaker_state{engine="sglang"} 0.0' in text
    assert "llm_gateway_in_flight_requests 0.0" in text
