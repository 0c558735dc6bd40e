"""Ollama's native API behind the OpenAI surface: request translation, NDJSON -> SSE, ``format`` for schemas."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import orjson
import pytest

from config.local_section import LocalConfig
from tests.local.fakes import JSON_REPLY, FakeOllama, LoopThread
from tests.local.gateway import KEY, RunningGateway


@pytest.fixture(scope="module")
def stack(loop_thread: LoopThread) -> Iterator[tuple[RunningGateway, FakeOllama]]:
    fake = FakeOllama(loop_thread).start()
    # The dev profile: every request goes to Ollama.
    cfg = LocalConfig(
        profile="dev", ollama_url=fake.url, served_model="dev-model", rate_limit={"per_key_per_s": 1000, "burst": 1000}
    )
    with RunningGateway(cfg) as gw:
        yield gw, fake
    fake.stop()


@pytest.fixture
def client(stack: tuple[RunningGateway, FakeOllama]) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack[0].url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def test_chat_translates_sampling_to_options(client: openai.OpenAI, stack: tuple[RunningGateway, FakeOllama]) -> None:
    out = client.chat.completions.create(
        model="dev-model",
        messages=[{"role": "user", "content": "你好"}],
        max_tokens=12,
        temperature=0.2,
        top_p=0.9,
        seed=7,
        stop=["\n"],
    )
    assert out.choices[0].message.content == "[ollama] 你好"
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (7, 3)
    sent = stack[1].b.received[-1]
    assert sent["model"] == "llm-deploy" and sent["stream"] is False
    assert sent["options"] == {"num_predict": 12, "temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["\n"]}
    assert sent["messages"] == [{"role": "user", "content": "你好"}]


def test_ndjson_stream_becomes_sse(client: openai.OpenAI, stack: tuple[RunningGateway, FakeOllama]) -> None:
    chunks = list(
        client.chat.completions.create(
            model="dev-model",
            messages=[{"role": "user", "content": "stream"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "[ollama] stream"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert stack[1].b.received[-1]["stream"] is True


def test_raw_sse_framing(stack: tuple[RunningGateway, FakeOllama]) -> None:
    r = stack[0].post("/v1/completions", {"model": "dev-model", "prompt": "p", "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert "".join(orjson.loads(e[6:])["choices"][0]["text"] for e in events[:-1]) == "[ollama] p"
    assert stack[1].b.received[-1]["prompt"] == "p"


def test_schema_goes_as_format(client: openai.OpenAI, stack: tuple[RunningGateway, FakeOllama]) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    out = client.chat.completions.create(
        model="dev-model",
        messages=[{"role": "user", "content": "who"}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    assert orjson.loads(out.choices[0].message.content or "") == orjson.loads(JSON_REPLY)
    assert stack[1].b.received[-1]["format"] == schema
    client.chat.completions.create(
        model="dev-model", messages=[{"role": "user", "content": "who"}], response_format={"type": "json_object"}
    )
    assert stack[1].b.received[-1]["format"] == "json"


def test_ollama_404_is_openai_shaped(stack: tuple[RunningGateway, FakeOllama]) -> None:
    gw, fake = stack
    fake.b.mode = "ok"
    gw.gateway.engines[0].spec = gw.gateway.engines[0].spec.model_copy(
        update={"upstream_models": {"dev-model": "nope"}}
    )
    try:
        r = gw.post("/v1/chat/completions", {"model": "dev-model", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 404 and "model 'nope' not found" in r.json()["error"]["message"]
    finally:
        gw.gateway.engines[0].spec = gw.gateway.engines[0].spec.model_copy(
            update={"upstream_models": {"dev-model": "llm-deploy"}}
        )
