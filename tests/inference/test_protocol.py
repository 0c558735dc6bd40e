"""input_fn / output_fn / limits: every bad input becomes a RequestError (4xx) naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inference.inference import GuideParams, RequestError, input_fn, output_fn
from local.embedded.limits import RUNTIME_ENV, RuntimeLimits, read_runtime_env


def _json(payload: Any) -> str:
    return json.dumps(payload)


def test_single_prompt_with_defaults() -> None:
    req = input_fn(_json({"inputs": "Hello"}), "application/json")
    assert (req.kind, req.prompts, req.single) == ("inputs", ("Hello",), True)
    assert req.params == GuideParams()


def test_list_and_every_parameter() -> None:
    params = {
        "max_new_tokens": 16,
        "min_new_tokens": 2,
        "temperature": 0.7,
        "top_p": 0.9,
        "do_sample": True,
        "stop": ["\n", "###"],
        "seed": 7,
        "return_full_text": True,
    }
    # bytes with a charset: the toolkit passes bytes when the Content-Type is not exactly application/json
    req = input_fn(_json({"inputs": ["a", "b"], "parameters": params}).encode(), "application/json; charset=utf-8")
    assert req.prompts == ("a", "b")
    assert not req.single
    p = req.params
    assert (p.max_new_tokens, p.min_new_tokens, p.temperature, p.top_p) == (16, 2, 0.7, 0.9)
    assert (p.stop, p.seed, p.return_full_text) == (("\n", "###"), 7, True)


def test_temperature_alone_means_sampling() -> None:
    assert input_fn(_json({"inputs": "x", "parameters": {"temperature": 0.5}}), "application/json").params.temperature
    greedy = input_fn(_json({"inputs": "x", "parameters": {"temperature": 0}}), "application/json")
    assert greedy.params.temperature == 0.0
    # do_sample false wins over a temperature: greedy
    assert (
        input_fn(
            _json({"inputs": "x", "parameters": {"temperature": 0.9, "do_sample": False}}), "application/json"
        ).params.temperature
        == 0.0
    )


def test_openai_bodies_are_recognised() -> None:
    chat = input_fn(_json({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}), "application/json")
    assert (chat.kind, chat.body["max_tokens"]) == ("chat", 3)
    completion = input_fn(_json({"prompt": "hi"}), "application/json")
    assert completion.kind == "completion"


BAD = [
    ("not json", "application/json", 400, None, "not valid UTF-8 JSON"),
    (b"\xff\xfe", "application/json; charset=utf-8", 400, None, "not valid UTF-8 JSON"),
    (_json({"inputs": "x"}), "text/plain", 415, "Content-Type", "send application/json"),
    (_json({"inputs": "x"}), None, 415, "Content-Type", "send application/json"),
    (_json(["x"]), "application/json", 400, None, "JSON object"),
    (_json({"parameters": {}}), "application/json", 400, "inputs", "required"),
    (_json({"messages": [], "prompt": "x"}), "application/json", 400, "messages", "not both"),
    (_json({"prompt": "x", "stream": True}), "application/json", 400, "stream", "not supported"),
    (_json({"prompt": "x", "n": 2}), "application/json", 400, "n", "from 1 to 1"),
    # wire's OpenAI rules: strict types, named fields
    (_json({"prompt": "x", "temperature": "hot"}), "application/json", 400, "temperature", "a number"),
    (_json({"messages": [{"role": "robot", "content": "x"}]}), "application/json", 400, "messages[0].role", "one of"),
    (_json({"prompt": "x", "logprobs": 9}), "application/json", 400, "logprobs", "from 0 to 5"),
    (_json({"inputs": "x", "extra": 1}), "application/json", 400, "extra", "unknown field"),
    (_json({"inputs": []}), "application/json", 400, "inputs", "empty list"),
    (_json({"inputs": ""}), "application/json", 400, "inputs", "non-empty"),
    (_json({"inputs": 5}), "application/json", 400, "inputs", "string or a list"),
    (_json({"inputs": ["ok", 3]}), "application/json", 400, "inputs[1]", "non-empty string"),
    (_json({"inputs": "x", "parameters": []}), "application/json", 400, "parameters", "expected an object"),
    (
        _json({"inputs": "x", "parameters": {"max_tokens": 5}}),
        "application/json",
        400,
        "parameters.max_tokens",
        "unknown parameter",
    ),
    (
        _json({"inputs": "x", "parameters": {"max_new_tokens": "5"}}),
        "application/json",
        400,
        "parameters.max_new_tokens",
        "integer",
    ),
    (
        _json({"inputs": "x", "parameters": {"max_new_tokens": True}}),
        "application/json",
        400,
        "parameters.max_new_tokens",
        "integer",
    ),
    (
        _json({"inputs": "x", "parameters": {"temperature": "hot"}}),
        "application/json",
        400,
        "parameters.temperature",
        "number",
    ),
    (
        _json({"inputs": "x", "parameters": {"do_sample": True, "temperature": 0}}),
        "application/json",
        400,
        "parameters.temperature",
        "> 0",
    ),
    (
        _json({"inputs": "x", "parameters": {"do_sample": "yes"}}),
        "application/json",
        400,
        "parameters.do_sample",
        "true or false",
    ),
    (
        _json({"inputs": "x", "parameters": {"stop": 3}}),
        "application/json",
        400,
        "parameters.stop",
        "list of non-empty strings",
    ),
    (_json({"inputs": "x", "parameters": {"stop": [""]}}), "application/json", 400, "parameters.stop", "non-empty"),
    # The core does not honour top_k / repetition_penalty: refused, not ignored.
    (_json({"inputs": "x", "parameters": {"top_k": 40}}), "application/json", 400, "parameters.top_k", "unknown"),
    (
        _json({"inputs": "x", "parameters": {"repetition_penalty": 1.1}}),
        "application/json",
        400,
        "parameters.repetition_penalty",
        "unknown",
    ),
    (_json({"inputs": "x", "parameters": {"seed": -1}}), "application/json", 400, "parameters.seed", "out of range"),
    (
        _json({"inputs": "x", "parameters": {"return_full_text": 1}}),
        "application/json",
        400,
        "parameters.return_full_text",
        "true or false",
    ),
]


@pytest.mark.parametrize(("body", "content_type", "status", "param", "message"), BAD)
def test_bad_input_is_a_4xx_naming_the_field(
    body: str | bytes, content_type: str | None, status: int, param: str | None, message: str
) -> None:
    with pytest.raises(RequestError) as info:
        input_fn(body, content_type)
    err = info.value
    assert err.status_code == status
    assert message in str(err)
    body_json = json.loads(err.message)
    assert body_json["error"]["param"] == param
    assert body_json["error"]["type"] == "invalid_request_error"
    if param:
        assert str(err).startswith(f"{param}:")


def test_output_fn_shapes_and_accept() -> None:
    item = {"generated_text": "a", "prompt_tokens": 1, "completion_tokens": 2, "finish_reason": "length"}
    prediction = {"kind": "inputs", "single": True, "items": [item]}
    body, content_type = output_fn(prediction, "application/json")
    assert content_type == "application/json"
    assert json.loads(body) == item
    # A list of inputs answers a list of objects (the Hugging Face containers' shape).
    body, _ = output_fn({**prediction, "single": False, "items": [item, item]}, "*/*")
    assert json.loads(body) == [item, item]
    with pytest.raises(RequestError) as info:
        output_fn(prediction, "text/csv")
    assert info.value.status_code == 406


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAX_NEW_TOKENS": "lots"}, "MAX_NEW_TOKENS: 'lots' is not an integer"),
        ({"MAX_INPUT_TOKENS": "0"}, "MAX_INPUT_TOKENS: 0 is out of range"),
        ({"TRUNCATE_INPUT": "maybe"}, "TRUNCATE_INPUT: 'maybe' is not a boolean"),
        ({"DTYPE": "int3"}, "DTYPE: 'int3' is not allowed"),
        ({"ENGINE_MODE": "pool"}, "ENGINE_MODE: 'pool' is not allowed"),
    ],
)
def test_bad_limits_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_runtime_env(env)


def test_limits_defaults_and_overrides() -> None:
    assert read_runtime_env({}) == RuntimeLimits()
    lim = read_runtime_env({"MAX_NEW_TOKENS": "16", "DEFAULT_MAX_NEW_TOKENS": "64", "TRUNCATE_INPUT": "false"})
    assert lim.max_new_tokens == 16
    assert lim.default_max_new_tokens == 16  # never above the cap
    assert lim.truncate_input is False


def test_the_table_and_the_dataclass_agree() -> None:
    """One table: every variable has a RuntimeLimits field with the table's default, and nothing else exists."""
    defaults = RuntimeLimits()
    assert {v.name.lower() for v in RUNTIME_ENV} == set(vars(defaults))
    for var in RUNTIME_ENV:
        assert getattr(defaults, var.name.lower()) == var.default, var.name
