"""OpenAI request validation: one set of rules (OpenAI's own) for every entry point of the project.

Types are strict as OpenAI's are: ``"stream": "yes"``, ``"max_tokens": "10"`` and ``"n": true`` are rejected (a bool
is never a number here). Every rejection is a 400 :class:`~wire.errors.WireError` whose ``param`` names the field
(``messages[2].content``) and whose message says what is allowed. Unknown fields are left alone: servers behind us may
support more than the rules below know about.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from wire.errors import WireError, bad_request

ROLES = ("system", "user", "assistant", "tool", "developer", "function")
TEXT_PART_TYPES = ("text", "input_text")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
SCHEMA_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOOL_CHOICES = ("none", "auto", "required")
MAX_STOP = 4
TEMPERATURE_MAX = 2.0
PENALTY_MAX = 2.0
LOGIT_BIAS_MAX = 100.0
TOP_LOGPROBS_MAX = 20
COMPLETION_LOGPROBS_MAX = 5
MODEL_NAME_MAX = 256


@dataclass(frozen=True)
class Limits:
    """Bounds a deployment may tighten (OpenAI's own where it has one).

    Attributes:
        max_tokens: the largest ``max_tokens`` / ``max_completion_tokens`` accepted.
        max_n: the largest ``n`` (1 where the engine cannot return several choices).
    """

    max_tokens: int = 1_000_000
    max_n: int = 128


DEFAULT_LIMITS = Limits()


def parse_json(raw: bytes | str) -> dict[str, Any]:
    """A request body as a JSON object.

    Raises:
        WireError: 400 ``invalid_json`` for malformed JSON or a body that is not an object.
    """
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise bad_request(f"request body is not valid JSON: {err}", None, "invalid_json") from None
    if not isinstance(obj, dict):
        raise bad_request("request body must be a JSON object", None, "invalid_json")
    return obj


def _fail(param: str, allowed: str, value: Any, code: str = "invalid_value") -> WireError:
    shown = (
        json.dumps(value)[:60] if isinstance(value, str | int | float | bool) or value is None else type(value).__name__
    )
    return bad_request(f"{param}: expected {allowed}, got {shown}", param, code)


def is_int(v: Any) -> bool:
    """A JSON integer (``true`` is not one)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A JSON number (``true`` is not one)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int(body: dict[str, Any], name: str, lo: int, hi: int) -> None:
    v = body.get(name)
    if v is not None and not (is_int(v) and lo <= v <= hi):
        raise _fail(name, f"an integer from {lo} to {hi}", v)


def _number(body: dict[str, Any], name: str, lo: float, hi: float, lo_open: bool = False) -> None:
    v = body.get(name)
    if v is None:
        return
    ok = is_number(v) and (lo < v if lo_open else lo <= v) and v <= hi
    if not ok:
        raise _fail(name, f"a number {'>' if lo_open else '>='} {lo:g} and <= {hi:g}", v)


def _bool(body: dict[str, Any], name: str, where: str | None = None) -> None:
    v = body.get(name)
    if v is not None and not isinstance(v, bool):
        raise _fail(where or name, "true or false", v)


def _string(body: dict[str, Any], name: str) -> None:
    v = body.get(name)
    if v is not None and not isinstance(v, str):
        raise _fail(name, "a string", v)


def _sampling(body: dict[str, Any], limits: Limits) -> None:
    """The fields chat and completions share."""
    model = body.get("model")
    if not isinstance(model, str) or not 1 <= len(model) <= MODEL_NAME_MAX:
        raise _fail("model", f"a model name (a string of 1 to {MODEL_NAME_MAX} characters)", model)
    _int(body, "max_tokens", 1, limits.max_tokens)
    _number(body, "temperature", 0, TEMPERATURE_MAX)
    _number(body, "top_p", 0, 1, lo_open=True)
    _int(body, "n", 1, limits.max_n)
    _bool(body, "stream")
    so = body.get("stream_options")
    if so is not None:
        if not isinstance(so, dict):
            raise _fail("stream_options", 'an object such as {"include_usage": true}', so)
        if body.get("stream") is not True:
            raise bad_request("stream_options: only allowed when stream is true", "stream_options")
        _bool(so, "include_usage", "stream_options.include_usage")
    stop = body.get("stop")
    if (stop is not None and not isinstance(stop, str)) and (
        not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) for s in stop)
    ):
        raise _fail("stop", f"a string or a list of at most {MAX_STOP} strings", stop)
    seed = body.get("seed")
    if seed is not None and not is_int(seed):
        raise _fail("seed", "an integer", seed)
    _number(body, "presence_penalty", -PENALTY_MAX, PENALTY_MAX)
    _number(body, "frequency_penalty", -PENALTY_MAX, PENALTY_MAX)
    _string(body, "user")
    bias = body.get("logit_bias")
    if bias is not None:
        if not isinstance(bias, dict):
            raise _fail("logit_bias", "an object of token id -> number", bias)
        for k, v in bias.items():
            if not (is_number(v) and -LOGIT_BIAS_MAX <= v <= LOGIT_BIAS_MAX):
                raise _fail(f"logit_bias.{k}", f"a number from -{LOGIT_BIAS_MAX:g} to {LOGIT_BIAS_MAX:g}", v)


def _message(i: int, msg: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise _fail(where, "an object with role and content", msg, "invalid_type")
    role = msg.get("role")
    if role not in ROLES:
        raise _fail(f"{where}.role", f"one of {', '.join(ROLES)}", role)
    content = msg.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            pwhere = f"{where}.content[{j}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise _fail(pwhere, "an object with a type", part, "invalid_type")
            if part["type"] in TEXT_PART_TYPES and not isinstance(part.get("text"), str):
                raise _fail(f"{pwhere}.text", "a string", part.get("text"), "invalid_type")
    elif content is None:
        if role not in ("assistant", "tool", "function"):
            raise _fail(f"{where}.content", "a string or a list of parts", content, "invalid_type")
    elif not isinstance(content, str):
        raise _fail(f"{where}.content", "a string or a list of parts", content, "invalid_type")
    name = msg.get("name")
    if name is not None and not isinstance(name, str):
        raise _fail(f"{where}.name", "a string", name)


def _response_format(rf: Any) -> None:
    if rf is None:
        return
    if not isinstance(rf, dict) or rf.get("type") not in RESPONSE_FORMATS:
        got = rf.get("type") if isinstance(rf, dict) else rf
        raise _fail("response_format.type", f"one of {', '.join(RESPONSE_FORMATS)}", got)
    if rf["type"] != "json_schema":
        return
    js = rf.get("json_schema")
    if not isinstance(js, dict):
        raise _fail("response_format.json_schema", "an object with name and schema (required for json_schema)", js)
    name = js.get("name")
    if name is not None and not (isinstance(name, str) and SCHEMA_NAME_RE.match(name)):
        raise _fail("response_format.json_schema.name", "1 to 64 letters, digits, _ or -", name)
    if not isinstance(js.get("schema"), dict):
        raise _fail("response_format.json_schema.schema", "a JSON Schema object", js.get("schema"))
    _bool(js, "strict", "response_format.json_schema.strict")


def _tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _fail("tools", "a list of {type: function, function: {name, ...}}", tools)
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
                raise _fail(f"tools[{i}]", "an object {type: function, function: {name, ...}}", tool, "invalid_type")
            if not isinstance(fn.get("name"), str) or not fn["name"]:
                raise _fail(f"tools[{i}].function.name", "a non-empty string", fn.get("name"))
    choice = body.get("tool_choice")
    if choice is not None and not (choice in TOOL_CHOICES or isinstance(choice, dict)):
        raise _fail("tool_choice", f"one of {', '.join(TOOL_CHOICES)} or an object naming a function", choice)


def chat_request(body: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Check a ``/v1/chat/completions`` body against OpenAI's rules.

    Returns:
        ``body`` itself (unchanged) for chaining.
    Raises:
        WireError: 400 naming the first field that breaks a rule.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages", "a non-empty list of {role, content}", messages)
    for i, msg in enumerate(messages):
        _message(i, msg)
    _sampling(body, limits)
    _int(body, "max_completion_tokens", 1, limits.max_tokens)
    _bool(body, "logprobs")
    _int(body, "top_logprobs", 0, TOP_LOGPROBS_MAX)
    if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
        raise bad_request("top_logprobs: only allowed when logprobs is true", "top_logprobs")
    _response_format(body.get("response_format"))
    _tools(body)
    _bool(body, "parallel_tool_calls")
    return body


def completion_request(body: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Check a ``/v1/completions`` body against OpenAI's rules.

    Returns:
        ``body`` itself (unchanged).
    Raises:
        WireError: 400 naming the first field that breaks a rule.
    """
    prompt = body.get("prompt")
    ok = (isinstance(prompt, str) and prompt != "") or (
        isinstance(prompt, list) and prompt and all(isinstance(p, str) and p for p in prompt)
    )
    if not ok:
        raise _fail("prompt", "a non-empty string or a non-empty list of non-empty strings", prompt)
    _sampling(body, limits)
    _int(body, "logprobs", 0, COMPLETION_LOGPROBS_MAX)
    _bool(body, "echo")
    _string(body, "suffix")
    _int(body, "best_of", 1, limits.max_n)
    return body


def stop_list(body: dict[str, Any]) -> list[str]:
    """``stop`` as a list (empty when absent)."""
    stop = body.get("stop")
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def token_limit(body: dict[str, Any], default: int) -> int:
    """The completion-token budget asked for: ``max_completion_tokens``, else ``max_tokens``, else ``default``."""
    return int(body.get("max_completion_tokens") or body.get("max_tokens") or default)


def include_usage(body: dict[str, Any]) -> bool:
    """Did a streaming client ask for the final usage chunk?"""
    so = body.get("stream_options")
    return bool(isinstance(so, dict) and so.get("include_usage"))


def message_text(msg: dict[str, Any]) -> str:
    """A message's text (the text parts of a multi-part content, joined)."""
    content = msg.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in content if p.get("type") in TEXT_PART_TYPES)


def output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a chat body asks for: the schema, ``{"type": "object"}`` for json_object, else None."""
    rf = body.get("response_format")
    if not isinstance(rf, dict) or rf.get("type") in (None, "text"):
        return None
    if rf["type"] == "json_object":
        return {"type": "object"}
    schema = rf["json_schema"]["schema"]
    assert isinstance(schema, dict)
    return schema
