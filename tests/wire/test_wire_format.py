"""Builders, SSE framing/parsing and the error body of the wire package; and that it needs nothing but the
standard library (the router Lambda and the SageMaker handler vendor it: the check runs without site-packages)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from wire.build import answer_text, chunk, chunk_text, full_response, model_list, new_id, usage
from wire.errors import WireError, error_body, error_type, parse_error_body
from wire.sse import DONE, EventParser, EventTooLarge, decode, error_event, event, parse_events


def test_only_standard_library() -> None:
    code = (
        "import sys, wire.build, wire.errors, wire.sse, wire.validate\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'wire', '__main__'})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-S", "-E", "-c", code], capture_output=True, text=True, check=True, cwd=".")
    assert out.stdout.strip() == ""


def test_bodies_parse_with_the_official_sdk_types() -> None:
    c = ChatCompletion.model_validate(full_response("chat", "m", "hi", None, 3, 1))
    assert c.choices[0].message.content == "hi" and c.choices[0].finish_reason == "stop"
    assert c.usage is not None and c.usage.total_tokens == 4 and c.id.startswith("chatcmpl-")
    t = Completion.model_validate(full_response("completion", "m", "yo", "length", 2, 5))
    assert t.choices[0].text == "yo" and t.choices[0].finish_reason == "length"
    rid = new_id("chat")
    first = ChatCompletionChunk.model_validate(chunk("chat", rid, "m", "a", first=True))
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == "a"
    last = ChatCompletionChunk.model_validate(chunk("chat", rid, "m", None, usage_=usage(1, 2)))
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 2
    assert chunk_text("chat", chunk("chat", rid, "m", "xy")) == "xy"
    assert chunk_text("completion", chunk("completion", rid, "m", "z", "stop")) == "z"
    assert answer_text("chat", full_response("chat", "m", "q", None, 0, 0)) == "q"
    models = model_list(["a", {"id": "b", "max_model_len": 2048}])
    assert [m["id"] for m in models["data"]] == ["a", "b"] and models["data"][1]["max_model_len"] == 2048


def test_error_body_and_status_mapping() -> None:
    body = json.loads(error_body("x: bad", "invalid_request_error", "x", "invalid_value"))
    assert body == {
        "error": {"message": "x: bad", "type": "invalid_request_error", "param": "x", "code": "invalid_value"}
    }
    assert [error_type(s) for s in (400, 401, 404, 418, 429, 500, 502, 504, 599)] == [
        "invalid_request_error",
        "authentication_error",
        "invalid_request_error",
        "invalid_request_error",
        "rate_limit_error",
        "server_error",
        "upstream_error",
        "upstream_error",
        "server_error",
    ]
    e = WireError(429, "slow down", headers={"Retry-After": "2"})
    assert (e.type, e.code, e.headers) == ("rate_limit_error", "rate_limit_exceeded", {"Retry-After": "2"})
    assert parse_error_body(e.body())["message"] == "slow down"  # type: ignore[index]
    assert parse_error_body(b'{"error": "boom"}') == {"message": "boom", "type": None, "param": None, "code": None}
    assert parse_error_body(b'{"ok": 1}') is None and parse_error_body(b"<html>") is None


def test_sse_round_trip_in_any_pieces() -> None:
    events = [chunk("chat", "id", "m", f"t{i}") for i in range(5)]
    raw = b"".join(event(e) for e in events) + b": keep-alive comment\n\n" + error_event("boom", code="c") + DONE
    assert [decode(p) for p in parse_events(raw)][:5] == events
    for size in (1, 2, 7, 64, len(raw)):
        parser = EventParser()
        payloads: list[bytes] = []
        for i in range(0, len(raw), size):
            payloads += parser.feed(raw[i : i + size])
        assert payloads == parse_events(raw) and not parser.pending
    assert decode(parse_events(raw)[-1]) is None
    err = decode(parse_events(raw)[-2])
    assert err is not None and err["error"]["code"] == "c"
    # CRLF line ends and multi-line data fields (the SSE spec) are read too
    assert parse_events(b'data: {"a":\r\ndata: 1}\r\n\r\n') == [b'{"a":\n1}']


def test_sse_parser_bounds_an_event_that_never_ends() -> None:
    parser = EventParser(max_event_bytes=1024)
    parser.feed(b"data: " + b"x" * 1000)
    with pytest.raises(EventTooLarge):
        parser.feed(b"x" * 100)
    with pytest.raises(ValueError, match="not a JSON object"):
        decode(b"[1, 2]")
