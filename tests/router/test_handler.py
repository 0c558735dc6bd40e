"""End to end through the Lambda handler: moto in server mode (Secrets Manager, sagemaker-runtime results queue) and
a real OpenAI-compatible server on 127.0.0.1 as the local target."""

from __future__ import annotations

import base64
import json
import socket
from typing import Any

import boto3
import pytest

from router import handler
from router.settings import Settings
from router.targets import CloudTarget
from tests.router.conftest import REGION, FakeGateway, queue_sagemaker
from wire.breaker import BreakerState

ENDPOINT = "llm-endpoint"
CARD = "4111 1111 1111 1111"


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def event(
    body: Any, headers: dict[str, str] | None = None, path: str = "/v1/chat/completions", b64: bool = False
) -> dict[str, Any]:
    raw = body if isinstance(body, str) else json.dumps(body)
    if b64:
        raw = base64.b64encode(raw.encode()).decode()
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": headers or {},
        "requestContext": {
            "http": {"method": "POST", "path": path},
            "authorizer": {"iam": {"userArn": "arn:aws:iam::123456789012:user/app"}},
        },
        "body": raw,
        "isBase64Encoded": b64,
    }


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "bank-bot", "messages": [{"role": "user", "content": text}], **extra}


class SpyCloud(CloudTarget):
    """The real cloud target (boto3 -> moto) that also keeps each request body it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[dict[str, Any]] = []

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(body)
        return super().complete(body)


def make_router(gateway_url: str, secret_arn: str, **overrides: Any) -> tuple[handler.Router, SpyCloud]:
    settings = Settings.from_env(
        {
            "ROUTER_LOCAL_URL": gateway_url,
            "ROUTER_LOCAL_SECRET_ARN": secret_arn,
            "ROUTER_SAGEMAKER_ENDPOINT": ENDPOINT,
            "ROUTER_LOCAL_TIMEOUT_S": "3",
            "ROUTER_CLOUD_TIMEOUT_S": "5",
            **overrides,
        }
    )
    cloud = SpyCloud(ENDPOINT, 5, 64, client_factory=lambda: boto3.client("sagemaker-runtime", region_name=REGION))
    return handler.Router(settings, cloud=cloud), cloud


def _openai_answer(
    text: str, finish_reason: str = "stop", prompt_tokens: int = 20, completion_tokens: int = 9
) -> dict[str, Any]:
    """What the SageMaker handler answers for an OpenAI chat body (a chat.completion)."""
    return {
        "id": "chatcmpl-endpoint",
        "object": "chat.completion",
        "created": 1,
        "model": "endpoint-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def answer(resp: dict[str, Any]) -> str:
    return json.loads(resp["body"])["choices"][0]["message"]["content"]


def test_simple_goes_local_with_key_from_secrets_manager(gateway: FakeGateway, secret_arn: str) -> None:
    router, cloud = make_router(gateway.url, secret_arn)
    resp = router.handle(event(chat("What are your opening hours on Saturday?")))
    assert resp["statusCode"] == 200
    assert resp["headers"]["x-route-target"] == "local" and resp["headers"]["x-route-reason"] == "simple"
    assert answer(resp) == "echo: What are your opening hours on Saturday?"
    assert len(gateway.requests) == 1 and cloud.sent == []


def test_complex_goes_to_sagemaker(gateway: FakeGateway, secret_arn: str, moto_url: str) -> None:
    router, cloud = make_router(gateway.url, secret_arn)
    queue_sagemaker(moto_url, _openai_answer("The payment is P*r/(1-(1+r)^-n).", "length", 20, 50))
    text = "Derive the monthly payment formula for a 30-year mortgage and prove it for r = 0."
    resp = router.handle(
        event(
            chat(
                text,
                max_tokens=50,
                user="u-1",
                seed=4111111111111111,
                tools=[{"type": "function", "function": {"name": "f", "description": "x"}}],
            )
        )
    )
    assert resp["statusCode"] == 200, resp["body"]
    assert resp["headers"]["x-route-target"] == "cloud" and resp["headers"]["x-route-reason"] == "complex"
    body = json.loads(resp["body"])
    assert body["object"] == "chat.completion" and body["usage"]["total_tokens"] == 70
    assert body["choices"][0]["message"]["content"] == "The payment is P*r/(1-(1+r)^-n)."
    assert body["choices"][0]["finish_reason"] == "length"  # passed on, not replaced by "stop"
    assert body["model"] == "bank-bot"
    assert gateway.requests == [] and len(cloud.sent) == 1
    # The endpoint gets the chat messages (it applies the chat template), not a rendered "User: ..." prompt.
    assert cloud.sent[0]["messages"] == [{"role": "user", "content": text}]
    assert cloud.sent[0]["max_tokens"] == 50 and "model" not in cloud.sent[0]


def test_sensitive_stays_local_even_with_cloud_hint(gateway: FakeGateway, secret_arn: str) -> None:
    router, cloud = make_router(gateway.url, secret_arn)
    text = f"My card {CARD} was charged twice. Analyze and derive the refund schedule, compare scenarios."
    resp = router.handle(event(chat(text), headers={"x-route": "cloud"}))
    assert resp["headers"]["x-route-target"] == "local" and resp["headers"]["x-route-reason"] == "sensitive_local_only"
    assert cloud.sent == []


def test_sensitive_fails_closed_when_local_down(secret_arn: str) -> None:
    router, cloud = make_router(closed_port_url(), secret_arn)
    resp = router.handle(event(chat("我的卡号是6222021234567890128，帮我查余额")))
    assert resp["statusCode"] == 503
    err = json.loads(resp["body"])["error"]
    assert err["code"] == "local_unavailable_sensitive" and err["type"] == "upstream_error"
    assert cloud.sent == []


def test_failover_local_down_goes_cloud(secret_arn: str, moto_url: str) -> None:
    router, cloud = make_router(closed_port_url(), secret_arn)
    queue_sagemaker(moto_url, _openai_answer("We open at 9."))
    resp = router.handle(event(chat("What time do you open tomorrow?")))
    assert resp["statusCode"] == 200
    assert resp["headers"]["x-route-target"] == "cloud" and resp["headers"]["x-route-reason"] == "simple;failover"
    assert len(cloud.sent) == 1 and answer(resp) == "We open at 9."


def test_failover_cloud_down_goes_local_and_breaker_opens(gateway: FakeGateway, secret_arn: str) -> None:
    settings = Settings.from_env(
        {
            "ROUTER_LOCAL_URL": gateway.url,
            "ROUTER_LOCAL_SECRET_ARN": secret_arn,
            "ROUTER_SAGEMAKER_ENDPOINT": ENDPOINT,
            "ROUTER_BREAKER_FAILURES": "2",
        }
    )
    dead = closed_port_url()
    calls = []

    def factory() -> Any:
        calls.append(1)
        return boto3.client("sagemaker-runtime", region_name=REGION, endpoint_url=dead)

    router = handler.Router(settings, cloud=CloudTarget(ENDPOINT, 1, 16, client_factory=factory))
    complex_text = "Simulate 10 years of monthly investing and estimate percentiles; compare three strategies."
    for _ in range(2):
        resp = router.handle(event(chat(complex_text)))
        assert resp["headers"]["x-route-target"] == "local" and resp["headers"]["x-route-reason"] == "complex;failover"
    assert router.breakers["cloud"].state is BreakerState.OPEN
    resp = router.handle(event(chat(complex_text)))  # breaker open: cloud skipped without a network attempt
    assert resp["headers"]["x-route-reason"] == "complex;failover"
    assert len(gateway.requests) == 3


def test_redact_to_cloud_round_trip(gateway: FakeGateway, secret_arn: str, moto_url: str) -> None:
    router, cloud = make_router(gateway.url, secret_arn, ROUTER_POLICY="redact_to_cloud")
    text = f"My card {CARD} and email jane.doe@example.com: analyze and derive a repayment plan, compare scenarios."
    queue_sagemaker(moto_url, _openai_answer("Plan for [CARD_1]: pay monthly; we will write to [EMAIL_1]."))
    resp = router.handle(event(chat(text)))
    assert resp["statusCode"] == 200, resp["body"]
    assert resp["headers"]["x-route-target"] == "cloud" and resp["headers"]["x-route-reason"] == "sensitive_redacted"
    sent = json.dumps(cloud.sent)
    assert CARD not in sent and "jane.doe@example.com" not in sent and "[CARD_1]" in sent
    assert answer(resp) == f"Plan for {CARD}: pay monthly; we will write to jane.doe@example.com."


@pytest.mark.parametrize(
    ("evt", "param"),
    [
        (event("not json"), None),
        (event("[1, 2]"), None),
        (event({"messages": []}), "messages"),
        (event({"model": "x"}), "messages"),
        (event({"messages": [{"role": "wizard", "content": "hi"}]}), "messages[0].role"),
        (event({"messages": [{"role": "user", "content": 5}]}), "messages[0].content"),
        (event(chat("hi", temperature=7)), "temperature"),
        (event(chat("hi", max_tokens=0)), "max_tokens"),
        (event(chat("hi", stream="yes")), "stream"),
        (event(chat("hi"), headers={"x-route": "moon"}), "x-route"),
        (event(chat("x" * 5000)), None),
        (event("@@@", b64=True) | {"body": "@@@"}, None),
        ({"requestContext": {"http": {"method": "POST"}}, "rawPath": "/v1/chat/completions"}, None),
    ],
)
def test_bad_input_is_400_with_openai_error(
    gateway: FakeGateway, secret_arn: str, evt: dict[str, Any], param: str | None
) -> None:
    router, _ = make_router(gateway.url, secret_arn, ROUTER_MAX_BODY_BYTES="4096")
    resp = router.handle(evt)
    assert resp["statusCode"] == 400, resp["body"]
    err = json.loads(resp["body"])["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert gateway.requests == []


def test_unknown_path_is_404(gateway: FakeGateway, secret_arn: str) -> None:
    router, _ = make_router(gateway.url, secret_arn)
    assert router.handle(event(chat("hi"), path="/admin"))["statusCode"] == 404


def test_image_parts_stay_local(gateway: FakeGateway, secret_arn: str) -> None:
    router, cloud = make_router(gateway.url, secret_arn, ROUTER_POLICY="redact_to_cloud")
    msg = {
        "role": "user",
        "content": [
            {"type": "text", "text": "Analyze and compare this statement in detail"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    }
    resp = router.handle(event({"model": "m", "messages": [msg, {"role": "user", "content": "derive the totals"}]}))
    assert resp["headers"]["x-route-reason"] == "unscannable_content" and cloud.sent == []


def test_stream_gets_sse_and_base64_body(gateway: FakeGateway, secret_arn: str) -> None:
    router, _ = make_router(gateway.url, secret_arn)
    resp = router.handle(event(chat("hello there", stream=True), b64=True))
    assert resp["headers"]["content-type"] == "text/event-stream"
    assert resp["body"].endswith("data: [DONE]\n\n") and "echo: hello there" in resp["body"]


def test_caller_override_forces_local(gateway: FakeGateway, secret_arn: str) -> None:
    overrides = json.dumps({"arn:aws:iam::123456789012:user/app": {"force_target": "local"}})
    router, cloud = make_router(gateway.url, secret_arn, ROUTER_CALLER_OVERRIDES=overrides)
    resp = router.handle(event(chat("Derive and prove the rule of 72, compare with exact compounding.")))
    assert resp["headers"]["x-route-reason"] == "caller_override" and cloud.sent == []


def test_decision_log_has_no_text_or_values(
    gateway: FakeGateway, secret_arn: str, caplog: pytest.LogCaptureFixture
) -> None:
    router, _ = make_router(gateway.url, secret_arn)
    with caplog.at_level("INFO", logger="router.decision"):
        router.handle(event(chat(f"card {CARD} please block it")))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "router.decision"]
    log = json.loads(line)
    assert log["target"] == "local" and log["types"] == ["card"] and "latency_ms" in log and "score" in log
    assert "4111" not in line and "block" not in line


def test_lambda_handler_reads_environment(
    gateway: FakeGateway, secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTER_LOCAL_URL", gateway.url)
    monkeypatch.setenv("ROUTER_LOCAL_SECRET_ARN", secret_arn)
    handler.reset()
    try:
        resp = handler.lambda_handler(event(chat("hi, what is APR?")), None)
    finally:
        handler.reset()
    assert resp["statusCode"] == 200 and resp["headers"]["x-route-target"] == "local"


def test_local_4xx_passes_through_without_failover(gateway: FakeGateway, secret_arn: str) -> None:
    router, cloud = make_router(gateway.url, secret_arn)
    gateway.status = 422
    resp = router.handle(event(chat("hi")))
    assert resp["statusCode"] == 422 and cloud.sent == []


def test_unexpected_error_is_a_well_formed_500() -> None:
    class Broken:
        name = "local"

        def complete(self, body: dict[str, Any]) -> dict[str, Any]:
            raise RuntimeError("secret value 4111 1111 1111 1111")

    router = handler.Router(Settings(), local=Broken(), cloud=Broken())
    resp = router.handle(event(chat("hello")))
    assert resp["statusCode"] == 500
    err = json.loads(resp["body"])["error"]
    assert err["code"] == "internal_error" and "4111" not in resp["body"]


# ---------------------------------------------------------------- issue 10 item 5: no 500 from a client


def _nested(depth: int) -> str:
    return '{"messages": [{"role": "user", "content": ' + "[" * depth + "]" * depth + "}]}"


@pytest.mark.parametrize(
    ("raw", "param", "code"),
    [
        (
            _nested(1000),
            "messages[0].content[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]",
            "too_deep",
        ),
        (
            _nested(100),
            "messages[0].content[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]",
            "too_deep",
        ),
        (
            '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + "9" * 5000 + "}",
            "max_tokens",
            "invalid_value",
        ),
        (
            '{"messages": [{"role": "user", "content": "hi"}], "metadata": {"a": [1, -' + "7" * 4400 + "]}}",
            "metadata.a[1]",
            "invalid_value",
        ),
        (
            '{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 99999999999}',
            "max_tokens",
            "invalid_value",
        ),
    ],
)
def test_deep_json_and_huge_integers_are_400_naming_the_field(
    gateway: FakeGateway, secret_arn: str, raw: str, param: str, code: str
) -> None:
    router, cloud = make_router(gateway.url, secret_arn, ROUTER_MAX_BODY_BYTES="100000")
    resp = router.handle(event(raw))
    assert resp["statusCode"] == 400, resp["body"]
    err = json.loads(resp["body"])["error"]
    assert err["param"] == param and err["code"] == code and err["type"] == "invalid_request_error"
    assert gateway.requests == [] and cloud.sent == []


def test_depth_at_the_limit_is_accepted(gateway: FakeGateway, secret_arn: str) -> None:
    router, _ = make_router(gateway.url, secret_arn)
    deep = {"k": "v"}
    for _ in range(29):  # body -> metadata -> 29 objects -> "k": 31 levels below the body
        deep = {"k": deep}
    resp = router.handle(event(chat("hello", metadata=deep)))
    assert resp["statusCode"] == 200, resp["body"]


def _tool_turns(args: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Analyze and derive the repayment schedule, compare three scenarios step by step."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup_account", "arguments": args}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "balance 1,250.00"},
        {"role": "user", "content": "Now derive and prove the optimal plan with a sensitivity analysis."},
    ]


def test_redact_to_cloud_with_null_content_and_tool_calls(gateway: FakeGateway, secret_arn: str, moto_url: str) -> None:
    """Was a 500 (StopIteration) and the tool call was never scanned; now it is scanned and redacted."""
    router, cloud = make_router(gateway.url, secret_arn, ROUTER_POLICY="redact_to_cloud")
    queue_sagemaker(moto_url, _openai_answer("Plan for [CARD_1]: pay monthly."))
    resp = router.handle(event({"model": "m", "messages": _tool_turns(json.dumps({"card": CARD}))}))
    assert resp["statusCode"] == 200, resp["body"]
    assert resp["headers"]["x-route-target"] == "cloud" and resp["headers"]["x-route-reason"] == "sensitive_redacted"
    sent = json.dumps(cloud.sent)
    assert CARD not in sent and "[CARD_1]" in sent and "lookup_account" in sent
    assert cloud.sent[0]["messages"][1]["content"] is None


def test_tool_call_arguments_are_scanned_under_local_only(gateway: FakeGateway, secret_arn: str) -> None:
    router, cloud = make_router(gateway.url, secret_arn)
    resp = router.handle(event({"model": "m", "messages": _tool_turns(json.dumps({"phone": "13812345678"}))}))
    assert resp["headers"]["x-route-target"] == "local" and resp["headers"]["x-route-reason"] == "sensitive_local_only"
    assert cloud.sent == []


@pytest.mark.parametrize(
    ("msg", "param"),
    [
        ({"role": "user", "content": None}, "messages[0].content"),
        ({"role": "assistant", "content": None, "tool_calls": "x"}, "messages[0].tool_calls"),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": 1}}]},
            "messages[0].tool_calls[0].function.name",
        ),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f"}}]},
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"role": "user", "content": "x", "name": 5}, "messages[0].name"),
    ],
)
def test_tool_call_shapes_are_validated(gateway: FakeGateway, secret_arn: str, msg: dict[str, Any], param: str) -> None:
    router, _ = make_router(gateway.url, secret_arn)
    resp = router.handle(event({"model": "m", "messages": [msg]}))
    assert resp["statusCode"] == 400 and json.loads(resp["body"])["error"]["param"] == param
