"""One decision table, run against both entry points of hybrid mode: the router Lambda's handler and the on-prem
gateway's ``hybrid`` model. Each case states the decision (status, ``x-route-target``, ``x-route-reason``) and the
two must give exactly that, with the same answer text, and a sensitive request must never reach the cloud.

Real parts on 127.0.0.1: the gateway on uvicorn, called with the official openai SDK; one on-prem engine (the fake
vLLM server replaying recorded vLLM answers, tests/local/fakes.py) serves both the Lambda's local target and the
gateway's local engine; one sagemaker-runtime (tests/sagemaker_runtime.py, real event-stream framing) answers boto3
for both the Lambda's cloud target and the gateway's SageMaker engine. Faults are the engine's or container's 500s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest

from config.router_section import RouterConfig
from router.handler import Router
from tests.hybrid.conftest import CLOUD_TEXT, COMPLEX, SIMPLE, Both, Container, start_both
from tests.local.fakes import LoopThread
from tests.local.gateway import KEY, RunningGateway
from tests.sagemaker_runtime import FakeRuntime


@dataclass(frozen=True)
class Case:
    """One row: the request, the faults, and the decision both entry points must answer with."""

    id: str
    messages: list[dict[str, Any]]
    expect: tuple[int, str, str]  # HTTP status, x-route-target, x-route-reason
    sensitive: bool = False  # then nothing of the request may reach the cloud, whatever happens
    local_down: bool = False
    cloud_down: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


LOCAL_ONLY_CASES = [
    Case("simple", user(SIMPLE), (200, "local", "simple")),
    Case("complex", user(COMPLEX), (200, "cloud", "complex")),
    Case("complex-streamed", user(COMPLEX), (200, "cloud", "complex"), extra={"stream": True}),
    Case("simple-streamed", user(SIMPLE), (200, "local", "simple"), extra={"stream": True}),
    Case(
        "card-plain",
        user(COMPLEX + " My card is 4111 1111 1111 1111."),
        (200, "local", "sensitive_local_only"),
        sensitive=True,
    ),
    Case(
        "card-in-words",
        user(COMPLEX + " card four one one one one one one one one one one one one one one one"),
        (200, "local", "sensitive_local_only"),
        sensitive=True,
    ),
    Case(
        "email-fullwidth",
        user(COMPLEX + " Send it to zhangsan＠qq．com"),
        (200, "local", "sensitive_local_only"),
        sensitive=True,
    ),
    Case(
        "iban-spaced-letters",
        user(COMPLEX + " my IBAN is G B 8 2 W E S T 1 2 3 4 5 6 9 8 7 6 5 4 3 2"),
        (200, "local", "sensitive_local_only"),
        sensitive=True,
    ),
    Case(
        "cn-id-chinese",
        user("请帮我分析并比较三种理财策略的收益，并推导公式。我的身份证号是11010519491231002X"),
        (200, "local", "sensitive_local_only"),
        sensitive=True,
    ),
    Case(
        "card-in-stop",
        user(COMPLEX),
        (200, "local", "sensitive_local_only"),
        sensitive=True,
        extra={"stop": ["4111-1111-1111-1111"]},
    ),
    Case(
        "phone-in-tool-call-arguments",
        [
            {"role": "user", "content": COMPLEX},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"phone": "415.555.0100"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "found"},
        ],
        (200, "local", "sensitive_local_only"),
        sensitive=True,
    ),
    Case(
        "ssn-in-content-part",
        [{"role": "user", "content": [{"type": "text", "text": COMPLEX}, {"type": "text", "text": "ssn 219-09-9999"}]}],
        (200, "local", "sensitive_local_only"),
        sensitive=True,
    ),
    Case(
        "unscannable-image",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": COMPLEX},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ],
        (200, "local", "unscannable_content"),
        sensitive=True,
    ),
    Case("look-alike-simple", user("Where is order 20240315-8842?"), (200, "local", "simple")),
    Case(
        "look-alike-complex",
        user(COMPLEX + " Reference: order #20240315-8842, hotline 95588."),
        (200, "cloud", "complex"),
    ),
    Case(
        "hint-cannot-send-sensitive",
        user(SIMPLE + " My card is 4111 1111 1111 1111."),
        (200, "local", "sensitive_local_only"),
        sensitive=True,
        headers={"x-route": "cloud"},
    ),
    Case("hint-cloud", user(SIMPLE), (200, "cloud", "route_hint"), headers={"x-route": "cloud"}),
    Case("complex-cloud-down", user(COMPLEX), (200, "local", "complex;failover"), cloud_down=True),
    Case("simple-local-down", user(SIMPLE), (200, "cloud", "simple;failover"), local_down=True),
    Case(
        "sensitive-local-down",
        user(COMPLEX + " My card is 4111 1111 1111 1111."),
        (503, "none", "sensitive_local_only"),
        sensitive=True,
        local_down=True,
    ),
    Case(
        "disguised-sensitive-local-down",
        user(SIMPLE + " reach me at 415.555.0100"),
        (503, "none", "sensitive_local_only"),
        sensitive=True,
        local_down=True,
    ),
    Case(
        "sensitive-both-down",
        user("我的卡号是陆贰贰贰 零贰壹壹 贰叁肆伍 陆柒捌玖，请分析并比较三种方案。"),
        (503, "none", "sensitive_local_only"),
        sensitive=True,
        local_down=True,
        cloud_down=True,
    ),
    Case(
        "sensitive-streamed-local-down",
        user(COMPLEX + " account holder: Zhang San"),
        (503, "none", "sensitive_local_only"),
        sensitive=True,
        local_down=True,
        extra={"stream": True},
    ),
    Case("both-down", user(COMPLEX), (503, "none", "complex"), local_down=True, cloud_down=True),
]

REDACT_CASES = [
    Case(
        "redacted-complex",
        user(COMPLEX + " My card is 4111 1111 1111 1111."),
        (200, "cloud", "sensitive_redacted"),
        sensitive=True,
    ),
    Case(
        "redacted-streamed",
        user(COMPLEX + " My card is 4111 1111 1111 1111."),
        (200, "cloud", "sensitive_redacted"),
        sensitive=True,
        extra={"stream": True},
    ),
    Case(
        "redacted-simple-stays-local",
        user(SIMPLE + " My card is 4111 1111 1111 1111."),
        (200, "local", "sensitive_simple"),
        sensitive=True,
    ),
    Case(
        "redacted-complex-cloud-down",
        user(COMPLEX + " My card is 4111 1111 1111 1111."),
        (200, "local", "sensitive_redacted;failover"),
        sensitive=True,
        cloud_down=True,
    ),
    Case(
        "redacted-local-down-sensitive-simple",
        user(SIMPLE + " My card is 4111 1111 1111 1111."),
        (200, "cloud", "sensitive_simple;failover"),
        sensitive=True,
        local_down=True,
    ),
    Case("complex-redact-policy", user(COMPLEX), (200, "cloud", "complex")),
]


@dataclass
class Outcome:
    status: int
    target: str
    reason: str
    text: str | None  # the answer's text, or the error code


def via_lambda(lam: Router, case: Case) -> Outcome:
    body = {"model": "hybrid", "messages": case.messages, **case.extra}
    resp = lam.handle(
        {
            "rawPath": "/v1/chat/completions",
            "requestContext": {"http": {"method": "POST"}},
            "headers": {"content-type": "application/json", **case.headers},
            "body": json.dumps(body),
        }
    )
    h = resp["headers"]
    if resp["statusCode"] != 200:
        text = json.loads(resp["body"])["error"]["code"]
    elif body.get("stream"):
        events = [e[6:] for e in resp["body"].split("\n\n") if e.startswith("data: {")]
        chunks = [json.loads(e) for e in events]
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    else:
        text = json.loads(resp["body"])["choices"][0]["message"]["content"]
    return Outcome(resp["statusCode"], h["x-route-target"], h["x-route-reason"], text)


def via_gateway(gw: RunningGateway, case: Case) -> Outcome:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=20)
    kw: dict[str, Any] = {"model": "hybrid", "messages": case.messages, **case.extra}
    try:
        raw = client.chat.completions.with_raw_response.create(**kw, extra_headers=case.headers)
    except openai.APIStatusError as err:
        h = err.response.headers
        code = err.body.get("code") if isinstance(err.body, dict) else None
        return Outcome(err.status_code, h["x-route-target"], h["x-route-reason"], code)
    parsed = raw.parse()
    if case.extra.get("stream"):
        chunks = list(parsed)
        assert all(c.model == "hybrid" for c in chunks)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        assert parsed.model == "hybrid"
        text = parsed.choices[0].message.content
    return Outcome(raw.status_code, raw.headers["x-route-target"], raw.headers["x-route-reason"], text)


def check(both: Both, case: Case, redacting: bool = False) -> None:
    both.faults(case.local_down, case.cloud_down)
    try:
        seen = len(both.runtime.calls)
        lam = via_lambda(both.lam, case)
        lambda_cloud = both.runtime.calls[seen:]
        seen = len(both.runtime.calls)
        gw = via_gateway(both.gateway, case)
        gateway_cloud = both.runtime.calls[seen:]
    finally:
        both.faults(False, False)
    assert (lam.status, lam.target, lam.reason) == case.expect, f"Lambda: {lam}"
    assert (gw.status, gw.target, gw.reason) == case.expect, f"gateway: {gw}"
    # The same answer from the same target (the error code may name a different last failure when both are down).
    if lam.status == 200:
        assert gw.text == lam.text
        assert (lam.text == CLOUD_TEXT) == (lam.target == "cloud")
    elif case.sensitive:
        assert lam.text == gw.text == "local_unavailable_sensitive"
    if case.sensitive and not redacting:
        assert lambda_cloud == [] and gateway_cloud == [], "a sensitive request reached the cloud"
    if case.sensitive:
        # Under redact_to_cloud only the placeholders go: the value never leaves in clear.
        for _, _, sent in lambda_cloud + gateway_cloud:
            assert "4111" not in json.dumps(sent) and "[CARD_1]" in json.dumps(sent)
    # Each entry point tried the cloud exactly when its decision let it.
    assert bool(lambda_cloud) == bool(gateway_cloud)


@pytest.mark.parametrize("case", LOCAL_ONLY_CASES, ids=lambda c: c.id)
def test_local_only_table(local_only: Both, case: Case) -> None:
    check(local_only, case)


@pytest.mark.parametrize("case", REDACT_CASES, ids=lambda c: c.id)
def test_redact_to_cloud_table(redacting: Both, case: Case) -> None:
    check(redacting, case, redacting=True)


@pytest.fixture(scope="module")
def tripping(loop_thread: LoopThread, runtime: FakeRuntime, container: Container) -> Iterator[Both]:
    """Both entry points with breakers that open on the first failure and stay open for a minute."""
    both = start_both(loop_thread, runtime, container, RouterConfig(breaker_failures=1, breaker_reset_s=60), failures=1)
    yield both
    both.gateway.__exit__()
    both.engine.stop()


BREAKER_STEPS = [
    Case("local-fails-once", user(SIMPLE), (200, "cloud", "simple;failover"), local_down=True),
    Case(
        "breaker-open-sensitive",
        user(COMPLEX + " My card is 4111 1111 1111 1111."),
        (503, "none", "sensitive_local_only"),
        sensitive=True,
    ),
    Case("breaker-open-simple", user(SIMPLE), (200, "cloud", "simple;failover")),
]


def test_open_breaker_on_the_local_side(tripping: Both) -> None:
    """In order: one local failure opens each entry point's breaker; the engine is back, but while the breaker is
    open a sensitive request gets 503 (never the cloud) and a simple one fails over, at both entry points."""
    for case in BREAKER_STEPS:
        check(tripping, case)
