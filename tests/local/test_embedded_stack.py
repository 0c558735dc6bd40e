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
        "ignore_eos": True,  # the faster engine could otherwise reach an early EOS before the slot is checked
    }
    with gw.post("/v1/completions", body, stream=True) as r:
        assert r.status_code == 200
        next(r.iter_content(chunk_size=None))
        assert engine.slots_in_use() == 1
    assert wait_until(lambda: engine.slots_in_use() == 0, timeout=1.0)
    assert wait_until(lambda: "llm_gateway_in_flight_requests 0.0" in gw.get("/metrics").text)


@pytest.mark.parametrize(
    ("path", "extra", "param"),
    [
        ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ("/v1/chat/completions", {"tool_choice": "required"}, "tool_choice"),
        ("/v1/chat/completions", {"presence_penalty": 0.5}, "presence_penalty"),
        ("/v1/chat/completions", {"logit_bias": {"5": 10}}, "logit_bias"),
        ("/v1/completions", {"echo": True}, "echo"),
        ("/v1/completions", {"best_of": 3}, "best_of"),
        (
            "/v1/chat/completions",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        ],
                    }
                ]
            },
            "messages[0].content[1].type",
        ),
    ],
)
def test_options_the_engine_cannot_honour_are_refused(
    gw: RunningGateway, path: str, extra: dict[str, object], param: str
) -> None:
    """Before: silently ignored (200). Now a 400 naming the field, and nothing is generated."""
    base: dict[str, object] = {"model": TINY_MODEL_NAME, "max_tokens": 3}
    base.update({"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "hi"})
    r = gw.post(path, {**base, **extra})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["param"], err["type"], err["code"]) == (param, "invalid_request_error", "unsupported_parameter")
    assert param in err["message"]


def test_ignore_eos_and_min_tokens_force_the_length(client: openai.OpenAI) -> None:
    kwargs = {"model": TINY_MODEL_NAME, "prompt": "Hello", "max_tokens": 40, "temperature": 0}
    free = client.completions.create(**kwargs)  # type: ignore[call-overload]
    forced = client.completions.create(extra_body={"ignore_eos": True}, **kwargs)  # type: ignore[call-overload]
    assert forced.usage is not None and forced.usage.completion_tokens == 40
    assert forced.choices[0].finish_reason == "length"
    floor = client.completions.create(extra_body={"min_tokens": 30}, **kwargs)  # type: ignore[call-overload]
    assert floor.usage is not None and floor.usage.completion_tokens >= 30
    assert free.usage is not None  # the tiny model may stop early without them; they must never stop it earlier
    assert free.usage.completion_tokens <= forced.usage.completion_tokens


def test_chat_logprobs_through_the_sdk(client: openai.OpenAI) -> None:
    msgs = [{"role": "user", "content": "Hello, how are you?"}]
    out = client.chat.completions.create(
        model=TINY_MODEL_NAME, messages=msgs, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )  # type: ignore[call-overload]
    content = out.choices[0].logprobs.content
    assert out.usage is not None and len(content) == out.usage.completion_tokens
    for entry in content:
        assert len(entry.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one, so its logprob equals the best alternative's.
        assert entry.logprob <= 0 and abs(entry.logprob - entry.top_logprobs[0].logprob) < 1e-4
    streamed = client.chat.completions.create(
        model=TINY_MODEL_NAME, messages=msgs, max_tokens=5, temperature=0, logprobs=True, stream=True
    )  # type: ignore[call-overload]
    tokens = [e.token for c in streamed if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert tokens == [e.token for e in content]


def test_logprobs_out_of_range_is_400(gw: RunningGateway) -> None:
    body = {"model": TINY_MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "logprobs": True}
    r = gw.post("/v1/chat/completions", {**body, "top_logprobs": 21})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_logprobs"
