"""Auth, rate limits, body limit and malformed requests: always the right 4xx in the OpenAI error body, never a
5xx, and the server stays up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from config.local_section import KeySpec
from local.auth import digest
from tests.local.fakes import FakeOpenAI, LoopThread
from tests.local.gateway import KEY, RunningGateway, custom, http_engine

LIMITED = "sk-limited-key"
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gw(loop_thread: LoopThread) -> Iterator[RunningGateway]:
    fake = FakeOpenAI(loop_thread, "vllm").start()
    cfg = custom(
        http_engine("vllm", "vllm", fake.url),
        keys=[KeySpec(name="limited", sha256=digest(LIMITED), rate_per_s=0.5, burst=2)],
        max_body_bytes=64 * 1024,
    )
    with RunningGateway(cfg) as running:
        yield running
    fake.stop()


def assert_error(
    r: requests.Response, status: int, code: str | None = None, param: str | None = None
) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    return err  # type: ignore[no-any-return]


def test_missing_and_wrong_key_are_401(gw: RunningGateway) -> None:
    assert_error(gw.post("/v1/chat/completions", {"model": "m", "messages": MSG}, key=None), 401, "missing_api_key")
    assert_error(
        gw.post("/v1/chat/completions", {"model": "m", "messages": MSG}, key="sk-wrong"), 401, "invalid_api_key"
    )
    assert_error(gw.get("/v1/models", key="sk-wrong"), 401)
    r = requests.post(gw.url + "/generate", json={"prompt": "x"}, headers={"Authorization": "Basic abc"}, timeout=5)
    assert_error(r, 401)


def test_rate_limit_is_429_with_retry_after(gw: RunningGateway) -> None:
    codes = [gw.post("/v1/chat/completions", {"model": "m", "messages": MSG}, key=LIMITED) for _ in range(3)]
    assert [r.status_code for r in codes[:2]] == [200, 200]
    err = assert_error(codes[2], 429, "rate_limit_exceeded")
    assert int(codes[2].headers["Retry-After"]) >= 1 and "'limited'" in str(err["message"])
    # Another key has its own bucket.
    assert gw.post("/v1/chat/completions", {"model": "m", "messages": MSG}).status_code == 200


def test_body_over_limit_is_413(gw: RunningGateway) -> None:
    huge = {"model": "m", "messages": [{"role": "user", "content": "x" * 200_000}]}
    assert_error(gw.post("/v1/chat/completions", huge), 413, "request_too_large")
    # Without Content-Length (chunked upload) the limit still holds.
    chunks = iter([b'{"model": "m", "prompt": "' + b"y" * 70_000, b'"}'])
    r = requests.post(gw.url + "/v1/completions", data=chunks, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert_error(r, 413, "request_too_large")


MALFORMED: list[tuple[str, object, int, str | None]] = [
    ("bad json", b'{"model": "m", "messages": [', 400, None),
    ("not an object", b"[1, 2]", 400, None),
    ("missing messages", {"model": "m"}, 400, "messages"),
    ("empty messages", {"model": "m", "messages": []}, 400, "messages"),
    ("wrong type", {"model": "m", "messages": "hello"}, 400, "messages"),
    ("bad role", {"model": "m", "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
    ("negative max_tokens", {"model": "m", "messages": MSG, "max_tokens": -5}, 400, "max_tokens"),
    ("temperature type", {"model": "m", "messages": MSG, "temperature": "hot"}, 400, "temperature"),
    ("n over local.max_n", {"model": "m", "messages": MSG, "n": 17}, 400, "n"),
    # strict types, as the OpenAI API: no coercion of strings or bools
    ("stream as string", {"model": "m", "messages": MSG, "stream": "yes"}, 400, "stream"),
    ("stream as int", {"model": "m", "messages": MSG, "stream": 0}, 400, "stream"),
    ("max_tokens as string", {"model": "m", "messages": MSG, "max_tokens": "10"}, 400, "max_tokens"),
    ("temperature as string", {"model": "m", "messages": MSG, "temperature": "1.5"}, 400, "temperature"),
    ("n as bool", {"model": "m", "messages": MSG, "n": True}, 400, "n"),
    ("top_p zero", {"model": "m", "messages": MSG, "top_p": 0}, 400, "top_p"),
    ("missing model", {"messages": MSG}, 400, "model"),
    ("unknown model", {"model": "gpt-9", "messages": MSG}, 404, "model"),
    (
        "json_schema without schema",
        {"model": "m", "messages": MSG, "response_format": {"type": "json_schema"}},
        400,
        "response_format.json_schema",
    ),
    (
        "invalid schema",
        {
            "model": "m",
            "messages": MSG,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}},
        },
        400,
        "response_format.json_schema.schema",
    ),
    ("too many stops", {"model": "m", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
]


@pytest.mark.parametrize(("case", "body", "status", "param"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_requests_are_4xx(
    gw: RunningGateway, case: str, body: object, status: int, param: str | None
) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    data = body if isinstance(body, bytes) else None
    r = requests.post(
        gw.url + "/v1/chat/completions", data=data, json=None if data else body, headers=headers, timeout=10
    )
    err = assert_error(r, status, param=param)
    if param:
        assert str(err["message"]).startswith(param) or param in str(err["message"])


def test_completion_and_generate_validation(gw: RunningGateway) -> None:
    assert_error(gw.post("/v1/completions", {"model": "m", "prompt": ""}), 400, param="prompt")
    assert_error(gw.post("/v1/completions", {"model": "m", "prompt": ["a", "b"]}), 400, param="prompt")
    assert_error(gw.post("/generate", {"text": "wrong field"}), 400, param="prompt")
    assert_error(gw.post("/generate", {"prompt": "x", "max_tokens": 0}), 400, param="max_tokens")


def test_engine_4xx_is_passed_on_not_failed_over(gw: RunningGateway) -> None:
    assert_error(gw.post("/v1/chat/completions", {"model": "m", "messages": MSG, "max_tokens": 999_999}), 400)


def test_unknown_route_and_method(gw: RunningGateway) -> None:
    assert_error(gw.get("/v2/nothing"), 404, "not_found")
    assert_error(requests.get(gw.url + "/v1/chat/completions", timeout=5), 405, "method_not_allowed")


def test_server_survives_and_counts_no_5xx(gw: RunningGateway) -> None:
    assert gw.get("/health", key=None).status_code == 200
    assert gw.post("/v1/chat/completions", {"model": "m", "messages": MSG}).status_code == 200
    metrics = gw.get("/metrics", key=None).text
    assert 'status="5' not in metrics
