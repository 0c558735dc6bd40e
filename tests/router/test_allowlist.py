"""What leaves for the cloud is built from scanned fields only (issue 10 item 3).

``ChatRequest.cloud_body`` is an allowlist: every string it emits is one of ``ChatRequest.texts`` (what detection
scans) at the same path, or a wire-format constant; every number is a bounded sampling field. Random request bodies
with extra fields everywhere check that no new field can slip through; end to end, a real boto3 client sends to a
server on 127.0.0.1 that keeps the exact bytes.
"""

from __future__ import annotations

import json
from typing import Any

import boto3  # noqa: F401  (the endpoint fixture's client)
from hypothesis import given, settings
from hypothesis import strategies as st

from router.handler import Router
from router.protocol import CLOUD_NUMBERS, FieldPath, parse_request
from router.settings import Settings
from router.targets import CloudTarget
from tests.router.conftest import CapturingEndpoint, FakeGateway

CONSTANTS = {("role",): None, ("type",): None}  # wire-format constants the builder writes itself
SENTINEL = "LEAK-9f1c"

junk = st.recursive(
    st.one_of(st.just(SENTINEL), st.integers(-5, 5), st.booleans(), st.none()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)
    ),
    max_leaves=4,
)
extra = st.dictionaries(st.sampled_from(["metadata", "refusal", "audio", "annotations", "x_custom"]), junk, max_size=3)
text = st.sampled_from(["hello", "derive the formula", "我想查询", ""])


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    role = draw(st.sampled_from(["system", "user", "assistant", "tool", "developer"]))
    msg: dict[str, Any] = {"role": role} | draw(extra)
    kind = draw(st.sampled_from(["str", "parts", "null"] if role == "assistant" else ["str", "parts"]))
    if kind == "str":
        msg["content"] = draw(text)
    elif kind == "parts":
        msg["content"] = [{"type": "text", "text": draw(text)} | draw(extra) for _ in range(draw(st.integers(1, 2)))]
    else:
        msg["content"] = None
    if role == "assistant" and (kind == "null" or draw(st.booleans())):
        msg["tool_calls"] = [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"} | draw(extra)}
            | draw(extra)
        ]
    if draw(st.booleans()):
        msg["name"] = "n"
    return msg


bodies = st.builds(
    lambda msgs, ext, stop, mt: (
        {"model": "m", "messages": msgs, **ext}
        | ({"stop": stop} if stop is not None else {})
        | ({"max_tokens": mt} if mt else {})
    ),
    st.lists(messages(), min_size=1, max_size=3),
    extra,
    st.one_of(st.none(), st.just("END"), st.lists(st.just("END"), max_size=2)),
    st.one_of(st.none(), st.integers(1, 100)),
)


def leaves(obj: Any, path: FieldPath = ()) -> list[tuple[FieldPath, Any]]:
    if isinstance(obj, dict):
        return [leaf for k, v in obj.items() for leaf in leaves(v, (*path, k))]
    if isinstance(obj, list):
        return [leaf for i, v in enumerate(obj) for leaf in leaves(v, (*path, i))]
    return [(path, obj)]


@settings(max_examples=300, deadline=None)
@given(body=bodies)
def test_every_forwarded_value_was_scanned(body: dict[str, Any]) -> None:
    req = parse_request(json.dumps(body).encode())
    scanned = dict(zip(req.text_paths, req.texts, strict=True))
    sent = req.cloud_body()
    for path, value in leaves(sent):
        if isinstance(value, str):
            if path[-1] in ("role", "type"):
                assert value in ("system", "user", "assistant", "tool", "developer", "text", "function")
                continue
            # The cloud body compacts content parts to the text parts; find the scanned text with the same value.
            if path[:1] == ("messages",) and path[2:3] == ("content",) and len(path) == 5:
                assert value in req.texts
                continue
            assert scanned.get(path) == value, f"{path} reaches the cloud unscanned"
        elif value is None:
            assert path[-1] == "content"
        else:
            assert len(path) == 1 and path[0] in CLOUD_NUMBERS, f"{path} is not an allowed number"
    assert SENTINEL not in json.dumps(sent)


def _router(gateway_url: str, ep: CapturingEndpoint, secret_arn: str, **env: str) -> Router:
    settings_ = Settings.from_env(
        {
            "ROUTER_LOCAL_URL": gateway_url,
            "ROUTER_LOCAL_SECRET_ARN": secret_arn,
            "ROUTER_SAGEMAKER_ENDPOINT": "ep",
            **env,
        }
    )
    return Router(settings_, cloud=CloudTarget("ep", 5, 64, client_factory=ep.client))


def _event(body: dict[str, Any]) -> dict[str, Any]:
    return {"rawPath": "/v1/chat/completions", "requestContext": {"http": {"method": "POST"}}, "body": json.dumps(body)}


COMPLEX = "Derive the amortization formula step by step, prove it, and compare three repayment scenarios."


def test_unscanned_fields_never_leave(gateway: FakeGateway, endpoint: CapturingEndpoint, secret_arn: str) -> None:
    router = _router(gateway.url, endpoint, secret_arn)
    body = {
        "model": SENTINEL,
        "user": SENTINEL,
        "metadata": {"note": SENTINEL},
        "tools": [{"type": "function", "function": {"name": "f", "description": SENTINEL}}],
        "seed": 4111111111111111,
        "messages": [{"role": "user", "content": [{"type": "text", "text": COMPLEX, "note": SENTINEL}], "x": SENTINEL}],
    }
    resp = router.handle(_event(body))
    assert resp["statusCode"] == 200 and resp["headers"]["x-route-target"] == "cloud", resp["body"]
    assert endpoint.bodies and SENTINEL not in endpoint.sent_text() and "4111111111111111" not in endpoint.sent_text()
    assert json.loads(resp["body"])["model"] == SENTINEL  # answered to the client, never sent


def test_card_in_stop_keeps_a_complex_request_local(
    gateway: FakeGateway, endpoint: CapturingEndpoint, secret_arn: str
) -> None:
    """The reported leak: a card number in ``stop`` went to SageMaker with a complex request."""
    router = _router(gateway.url, endpoint, secret_arn)
    resp = router.handle(
        _event({"model": "m", "messages": [{"role": "user", "content": COMPLEX}], "stop": ["4111 1111 1111 1111"]})
    )
    assert resp["headers"]["x-route-target"] == "local" and resp["headers"]["x-route-reason"] == "sensitive_local_only"
    assert endpoint.bodies == []


def test_stop_is_redacted_under_redact_to_cloud(
    gateway: FakeGateway, endpoint: CapturingEndpoint, secret_arn: str
) -> None:
    router = _router(gateway.url, endpoint, secret_arn, ROUTER_POLICY="redact_to_cloud")
    resp = router.handle(
        _event({"model": "m", "messages": [{"role": "user", "content": COMPLEX}], "stop": "4111 1111 1111 1111"})
    )
    assert resp["headers"]["x-route-target"] == "cloud", resp["body"]
    sent = json.loads(endpoint.bodies[0])
    assert sent["stop"] == "[CARD_1]" and "4111" not in endpoint.sent_text()
