"""The one set of OpenAI request rules: what passes, and for what fails, the 400 names the field."""

from __future__ import annotations

from typing import Any

import pytest

from wire.errors import WireError
from wire.validate import (
    Limits,
    chat_request,
    completion_request,
    include_usage,
    message_text,
    output_schema,
    parse_json,
    stop_list,
    token_limit,
)

MSG = [{"role": "user", "content": "hi"}]


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": "m", "messages": MSG, **kw}


GOOD_CHAT = [
    chat(),
    chat(temperature=0, top_p=1, n=2, max_tokens=1, stop=["a", "b", "c", "d"], seed=-3),
    chat(temperature=2.0, top_p=0.01, stop="x", stream=True, stream_options={"include_usage": True}),
    chat(presence_penalty=-2, frequency_penalty=2, logit_bias={"50256": -100}, user="u"),
    chat(logprobs=True, top_logprobs=20, max_completion_tokens=5),
    chat(response_format={"type": "json_schema", "json_schema": {"name": "p_1", "schema": {"type": "object"}}}),
    chat(response_format={"type": "json_object"}),
    chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}], tool_choice="auto"),
    {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]}]},
    {"model": "m", "messages": [*MSG, {"role": "assistant", "content": None, "tool_calls": []}]},
    chat(stream=False, vendor_extension={"anything": 1}),  # unknown fields are the engine's business
]

BAD_CHAT: list[tuple[dict[str, Any], str]] = [
    ({"messages": MSG}, "model"),
    (chat(model=""), "model"),
    (chat(model=5), "model"),
    (chat(messages=[]), "messages"),
    (chat(messages="hello"), "messages"),
    (chat(messages=["hi"]), "messages[0]"),
    (chat(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
    (chat(messages=[*MSG, {"role": "user", "content": 5}]), "messages[1].content"),
    (chat(messages=[{"role": "user", "content": None}]), "messages[0].content"),
    (chat(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]), "messages[0].content[0].text"),
    (chat(messages=[{"role": "user", "content": [{"text": "a"}]}]), "messages[0].content[0]"),
    # strict types, as OpenAI: strings and bools are not numbers, numbers are not bools
    (chat(stream="yes"), "stream"),
    (chat(stream=0), "stream"),
    (chat(max_tokens="10"), "max_tokens"),
    (chat(max_tokens=10.0), "max_tokens"),
    (chat(temperature="1.5"), "temperature"),
    (chat(n=True), "n"),
    (chat(seed=1.5), "seed"),
    (chat(logprobs=1), "logprobs"),
    # ranges
    (chat(max_tokens=0), "max_tokens"),
    (chat(max_completion_tokens=-1), "max_completion_tokens"),
    (chat(temperature=2.01), "temperature"),
    (chat(temperature=-0.1), "temperature"),
    (chat(top_p=0), "top_p"),
    (chat(top_p=1.5), "top_p"),
    (chat(n=0), "n"),
    (chat(n=129), "n"),
    (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    (chat(stop=[1]), "stop"),
    (chat(presence_penalty=3), "presence_penalty"),
    (chat(logit_bias={"1": 101}), "logit_bias.1"),
    (chat(logprobs=True, top_logprobs=21), "top_logprobs"),
    (chat(top_logprobs=2), "top_logprobs"),
    (chat(stream_options={"include_usage": True}), "stream_options"),
    (chat(stream=True, stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
    (chat(response_format={"type": "xml"}), "response_format.type"),
    (chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
    (
        chat(response_format={"type": "json_schema", "json_schema": {"schema": []}}),
        "response_format.json_schema.schema",
    ),
    (
        chat(response_format={"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}),
        "response_format.json_schema.name",
    ),
    (chat(tools=[{"type": "function"}]), "tools[0]"),
    (chat(tools=[{"type": "function", "function": {"name": ""}}]), "tools[0].function.name"),
    (chat(tool_choice="sometimes"), "tool_choice"),
]


@pytest.mark.parametrize("body", GOOD_CHAT, ids=range(len(GOOD_CHAT)))
def test_valid_chat_passes_unchanged(body: dict[str, Any]) -> None:
    before = repr(body)
    assert chat_request(body) is body
    assert repr(body) == before


@pytest.mark.parametrize(("body", "param"), BAD_CHAT, ids=[p for _, p in BAD_CHAT])
def test_invalid_chat_is_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(WireError) as info:
        chat_request(body)
    err = info.value
    assert (err.status, err.type, err.param) == (400, "invalid_request_error", param)
    assert err.message.startswith(param + ":"), err.message
    assert set(err.to_dict()["error"]) == {"message", "type", "param", "code"}


def test_limits_are_configurable() -> None:
    with pytest.raises(WireError, match="n: expected an integer from 1 to 1"):
        chat_request(chat(n=2), Limits(max_n=1))
    with pytest.raises(WireError) as info:
        chat_request(chat(max_tokens=101), Limits(max_tokens=100))
    assert info.value.param == "max_tokens"


def test_completion_rules() -> None:
    assert completion_request({"model": "m", "prompt": "x", "logprobs": 5, "echo": True, "best_of": 2})
    assert completion_request({"model": "m", "prompt": ["a", "b"]})
    for body, param in (
        ({"model": "m", "prompt": ""}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "m", "prompt": [1, 2]}, "prompt"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": "x", "logprobs": 6}, "logprobs"),
        ({"model": "m", "prompt": "x", "echo": "yes"}, "echo"),
        ({"model": "m", "prompt": "x", "max_tokens": "5"}, "max_tokens"),
    ):
        with pytest.raises(WireError) as info:
            completion_request(body)
        assert info.value.param == param


def test_parse_json() -> None:
    assert parse_json(b'{"a": 1}') == {"a": 1}
    for raw in (b"{", b"[1]", b"\xff\xfe", b""):
        with pytest.raises(WireError) as info:
            parse_json(raw)
        assert (info.value.status, info.value.code) == (400, "invalid_json")


def test_accessors() -> None:
    assert stop_list(chat()) == [] and stop_list(chat(stop="x")) == ["x"] and stop_list(chat(stop=["a"])) == ["a"]
    assert token_limit(chat(), 7) == 7 and token_limit(chat(max_tokens=3), 7) == 3
    assert token_limit(chat(max_tokens=3, max_completion_tokens=4), 7) == 4
    assert include_usage(chat(stream=True, stream_options={"include_usage": True}))
    assert not include_usage(chat(stream=True))
    assert (
        message_text(
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "x"}, {"type": "input_text", "text": "b"}],
            }
        )
        == "ab"
    )
    assert output_schema(chat()) is None
    assert output_schema(chat(response_format={"type": "json_object"})) == {"type": "object"}
    s = {"type": "array"}
    assert output_schema(chat(response_format={"type": "json_schema", "json_schema": {"schema": s}})) is s
