"""The real embedded engine serves the tiny smoke-test model through the whole stack (config -> uvicorn -> SDK)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from config.local_section import TINY_MODEL_NAME, EngineSpec, LocalConfig
from model_packages.tiny_model import build_tiny_model
from tests.local.fakes import wait_until
from tests.local.gateway import KEY, RunningGateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    model_dir = tmp_path_factory.mktemp("models") / TINY_MODEL_NAME
    build_tiny_model(str(model_dir))
    spec = EngineSpec(
        name="embedded",
        kind="embedded",
        models=[TINY_MODEL_NAME],
        model_dir=str(model_dir),
        device="cpu",
        max_batch_size=4,
    )
    # The default profile ("embedded"): the gateway builds the engine from the config, as `make local-up` does.
    with RunningGateway(LocalConfig(embedded=spec)) as running:
        yield running


@pytest.fixture
def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def test_ready_and_models(gw: RunningGateway, client: openai.OpenAI) -> None:
    assert gw.get("/ready").status_code == 200
    assert [m.id for m in client.models.list()] == [TINY_MODEL_NAME]


def test_chat_and_usage(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=TINY_MODEL_NAME,
        messages=[{"role": "user", "content": "Hello, how are you?"}],
        max_tokens=6,
        temperature=0,
    )
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.prompt_tokens > 0 and 1 <= out.usage.completion_tokens <= 6
    again = client.chat.completions.create(
        model=TINY_MODEL_NAME,
        messages=[{"role": "user", "content": "Hello, how are you?"}],
        max_tokens=6,
        temperature=0,
    )
    assert again.choices[0].message.content == out.choices[0].message.content  # greedy is deterministic


def test_stream_matches_non_stream(client: openai.OpenAI) -> None:
    kwargs = {"model": TINY_MODEL_NAME, "prompt": "The quick brown fox", "max_tokens": 8, "temperature": 0}
    whole = client.completions.create(**kwargs)  # type: ignore[call-overload]
    streamed = "".join(c.choices[0].text for c in client.completions.create(stream=True, **kwargs) if c.choices)  # type: ignore[call-overload]
    assert streamed == whole.choices[0].text


def test_engine_limits_are_400(gw: RunningGateway) -> None:
    r = gw.post("/v1/completions", {"model": TINY_MODEL_NAME, "prompt": "hi", "max_tokens": 100_000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"


def test_client_disconnect_frees_the_batch_slot(gw: RunningGateway) -> None:
    engine = gw.gateway.engines[0].engine
    # ~250 greedy tokens take seconds on a CPU; the slot must be free long before that.
    body = {
        "model": TINY_MODEL_NAME,
        "prompt": "The quick brown fox",
        "max_tokens": 250,
        "temperature": 0,
        "stream": True,
    }
    with gw.post("/v1/completions", body, stream=True) as r:
        assert r.status_code == 200
        next(r.iter_content(chunk_size=None))
        assert engine.slots_in_use() == 1
    assert wait_until(lambda: engine.slots_in_use() == 0, timeout=1.0)
    assert wait_until(lambda: "llm_gateway_in_flight_requests 0.0" in gw.get("/metrics").text)
