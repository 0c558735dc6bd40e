"""The gateway's ``hybrid`` model beyond the decision table: only scanned fields reach SageMaker, bad input is a 400
in the OpenAI shape, the route's metrics and log line say where and why (never a value), and the config refuses a
setup in which the cloud could be reached around the policy."""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
import pytest
from pydantic import ValidationError

from config.local_section import LocalConfig
from router import variants
from router.protocol import parse_request
from tests.hybrid.conftest import COMPLEX, ENDPOINT, SIMPLE, Both
from tests.local.gateway import KEY, http_engine

CARD = "4111 1111 1111 1111"
WIRE_CONSTANTS = {"system", "user", "assistant", "tool", "developer", "function", "text"}


def client(both: Both) -> openai.OpenAI:
    return openai.OpenAI(base_url=both.gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in strings(v)]
    return []


def test_only_scanned_fields_reach_sagemaker(local_only: Both) -> None:
    """Every string SageMaker receives is a text the router scanned (or a wire constant); tools, user, metadata,
    seed, response_format and unknown fields stay on-prem, even with a card number in them."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful analyst."},
        {"role": "user", "content": COMPLEX},
    ]
    before = len(local_only.runtime.calls)
    r = client(local_only).chat.completions.with_raw_response.create(
        model="hybrid",
        messages=messages,  # type: ignore[arg-type]
        tools=[
            {
                "type": "function",
                "function": {"name": "pay", "description": f"card {CARD}", "parameters": {"type": "object"}},
            }
        ],
        user=f"customer {CARD}",
        seed=4242,
        temperature=0.3,
        stop=["END"],
        extra_body={"metadata": {"card": CARD}, "x_internal": CARD},
    )
    assert r.headers["x-route-target"] == "cloud" and r.headers["x-route-reason"] == "complex"
    (_, op, sent), *_ = local_only.runtime.calls[before:]
    assert op == "invocations"
    scanned = parse_request(json.dumps({"model": "hybrid", "messages": messages, "stop": ["END"]}).encode()).texts
    assert set(strings(sent)) <= set(scanned) | WIRE_CONSTANTS
    assert set(sent) <= {"messages", "max_tokens", "temperature", "top_p", "stop", "stream"}
    assert "4111" not in json.dumps(sent) and 4242 not in sent.values()


def test_models_list_the_hybrid_model_and_completions_refuse_it(local_only: Both) -> None:
    c = client(local_only)
    assert {m.id for m in c.models.list()} == {"m", "hybrid"}
    with pytest.raises(openai.BadRequestError) as err:
        c.completions.create(model="hybrid", prompt="hi")
    assert err.value.body["param"] == "model"  # type: ignore[index]
    assert "chat/completions" in err.value.body["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "hybrid", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**30}, "max_tokens"),
        ({"model": "hybrid", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        (
            {
                "model": "hybrid",
                "messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": 1, "function": {}}]}],
            },
            "messages[0].tool_calls[0].id",
        ),
    ],
)
def test_bad_requests_are_400_in_the_openai_shape(local_only: Both, body: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(local_only).chat.completions.create(**body)
    assert err.value.body["param"] == param  # type: ignore[index]
    assert err.value.response.headers["x-route-target"] == "none"


def test_deep_json_and_bad_route_header_are_400(local_only: Both) -> None:
    deep = '{"model": "hybrid", "messages": [{"role": "user", "content": "hi"}], "x": ' + "[" * 40 + "]" * 40 + "}"
    r = local_only.gateway.post("/v1/chat/completions", data=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep"
    with pytest.raises(openai.BadRequestError) as err:
        client(local_only).chat.completions.create(
            model="hybrid", messages=[{"role": "user", "content": SIMPLE}], extra_headers={"x-route": "moon"}
        )
    assert err.value.body["param"] == "x-route"  # type: ignore[index]


def test_metrics_and_log_line_say_where_and_why_without_values(
    local_only: Both, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="router.decision"):
        client(local_only).chat.completions.create(
            model="hybrid", messages=[{"role": "user", "content": f"{COMPLEX} My card is {CARD}."}]
        )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.decision"]
    line = next((x for x in lines if x.get("entry") == "gateway" and "card" in x.get("types", ())), None)
    assert line is not None, lines
    assert line["target"] == "local" and line["reason"] == "sensitive_local_only", line
    assert line["types"] == ["card"] and isinstance(line["decision_us"], int), line
    leaked = [r.getMessage() for r in caplog.records if "4111" in r.getMessage()]
    assert leaked == []
    metrics = local_only.gateway.get("/metrics").text
    assert 'llm_gateway_hybrid_requests_total{reason="sensitive_local_only",target="local"}' in metrics
    assert 'llm_gateway_hybrid_sensitive_total{type="card"}' in metrics
    assert "llm_gateway_hybrid_decision_seconds_count" in metrics
    assert "4111" not in metrics


def cfg(**hybrid: Any) -> dict[str, Any]:
    return {
        "profile": "custom",
        "engines": [http_engine("vllm", "vllm", "http://127.0.0.1:9", "m")],
        "hybrid": {"enabled": True, "cloud": {"endpoint_name": ENDPOINT, "region": "us-east-1"}, **hybrid},
    }


def test_config_refuses_a_cloud_reachable_around_the_policy() -> None:
    data = cfg()
    data["engines"].append(
        {"name": "sm", "kind": "sagemaker", "endpoint_name": "llm-ep", "region": "us-east-1", "models": ["big"]}
    )
    with pytest.raises(ValidationError, match="without the hybrid policy"):
        LocalConfig.model_validate(data)
    with pytest.raises(ValidationError, match="hybrid.model"):
        LocalConfig.model_validate(cfg(model="m"))
    with pytest.raises(ValidationError, match="hybrid.local_model"):
        LocalConfig.model_validate(cfg(local_model="nope"))
    with pytest.raises(ValidationError, match="cloud: required"):
        LocalConfig.model_validate({**cfg(), "hybrid": {"enabled": True}})
    with pytest.raises(ValidationError, match="hybrid.cloud.name"):
        LocalConfig.model_validate(cfg(cloud={"name": "vllm", "endpoint_name": ENDPOINT, "region": "us-east-1"}))
    with pytest.raises(ValidationError, match="cloud.kind"):
        LocalConfig.model_validate(cfg(cloud={"kind": "vllm", "base_url": "http://127.0.0.1:9"}))
    ok = LocalConfig.model_validate(cfg())
    assert ok.hybrid_local_model() == "m" and ok.hybrid.cloud is not None and ok.hybrid.cloud.models == ["hybrid"]


def _placed(text: str, where: str) -> dict[str, Any]:
    """A complex request with ``text`` in one field that would leave."""
    ask = {"role": "user", "content": COMPLEX}
    if where == "content":
        return {"messages": [{"role": "user", "content": f"{COMPLEX} {text}"}]}
    if where == "part":
        return {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": COMPLEX}, {"type": "text", "text": text}]}
            ]
        }
    if where == "tool_arguments":
        call = {"id": "c1", "type": "function", "function": {"name": "note", "arguments": json.dumps({"v": text})}}
        return {"messages": [ask, {"role": "assistant", "content": None, "tool_calls": [call]}]}
    return {"messages": [ask], "stop": [text[:200]]}


def _one_per_type_and_disguise() -> list[tuple[str, str, str]]:
    seen: dict[tuple[str, str], str] = {}
    for case in variants.generate("tune", 5):
        if case.types and (case.types[0], case.disguise) not in seen:
            seen[case.types[0], case.disguise] = case.text
    fields = ("content", "part", "tool_arguments", "stop")
    return [(f"{k[0]}-{k[1]}", text, fields[i % len(fields)]) for i, (k, text) in enumerate(sorted(seen.items()))]


def test_no_disguised_value_reaches_sagemaker_when_the_local_engine_is_down(local_only: Both) -> None:
    """Every type under every disguise (a fresh seed of the generator), in content, a text part, tool-call arguments
    or ``stop`` of a request that would otherwise go to the cloud: with the local engine failing, the gateway answers
    503 local_unavailable_sensitive and SageMaker receives nothing."""
    cases = _one_per_type_and_disguise()
    assert len(cases) >= 100
    c = client(local_only)
    before = len(local_only.runtime.calls)
    local_only.faults(local_down=True, cloud_down=False)
    try:
        for name, text, where in cases:
            with pytest.raises(openai.APIStatusError) as err:
                c.chat.completions.create(model="hybrid", **_placed(text, where))
            assert err.value.status_code == 503, name
            assert err.value.body["code"] == "local_unavailable_sensitive", name  # type: ignore[index]
            assert err.value.response.headers["x-route-target"] == "none"
    finally:
        local_only.faults(local_down=False, cloud_down=False)
    assert local_only.runtime.calls[before:] == []


def test_ready_lists_the_hybrid_model_and_its_cloud_engine(local_only: Both) -> None:
    r = local_only.gateway.get("/ready")
    body = r.json()
    assert r.status_code == 200 and body["models"] == {"m": True, "hybrid": True}
    assert body["engines"]["cloud"] is True and body["engines"]["vllm"] is True
