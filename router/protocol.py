"""The OpenAI chat-completions request the router accepts, validated without third-party libraries.

Every rejection is a :class:`~router.errors.BadRequest` naming the field (``messages[2].content``) and what is allowed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from router.errors import BadRequest
from wire import build, sse, validate

ROLES = validate.ROLES
TEXT_PART_TYPES = validate.TEXT_PART_TYPES
MAX_JSON_DEPTH = 32  # containers one inside another, the body included; a chat request needs 5 (arguments are a string)
MAX_INT_DIGITS = 20  # every integer field fits in 64 bits; Python refuses to convert more than 4,300 digits
# Numbers the cloud target may receive (each validated and bounded by wire.validate); every string it receives is a
# scanned text (ChatRequest.texts), see cloud_body.
LIMITS = validate.Limits()  # the project's one set of OpenAI request rules and bounds
CLOUD_NUMBERS = ("max_tokens", "max_completion_tokens", "temperature", "top_p")

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class ChatRequest:
    """A validated request.

    Attributes:
        body: the parsed JSON object (forwarded to the local gateway as is).
        texts: every string the cloud target may receive, in order (what detection scans): message contents,
            text parts, names, tool-call ids, function names and arguments, ``stop``.
        text_roles: the role of each entry of ``texts`` (``request`` for top-level fields such as ``stop``).
        unscannable: some message part is not text (image, audio, file).
        stream: the client asked for server-sent events.
        text_paths: where each entry of ``texts`` sits in ``body`` (``("messages", 0, "content")``).
    """

    body: dict[str, Any]
    texts: list[str]
    text_roles: list[str]
    unscannable: bool
    stream: bool
    text_paths: list[FieldPath]

    def cloud_body(self, texts: list[str] | None = None) -> dict[str, Any]:
        """The request the cloud target sends, built only from scanned fields (allowlist, not blocklist).

        Every string in the result is an entry of ``texts`` placed at its path, or a constant of the wire format
        (a role, ``"text"``, ``"function"``); every number is one of :data:`CLOUD_NUMBERS`. Fields the router does
        not scan (``tools``, ``user``, ``metadata``, ``seed``, unknown keys) are not forwarded.

        Args:
            texts: the texts to place (default: ``self.texts``; the redacted ones under ``redact_to_cloud``).

        Raises:
            KeyError: a forwarded string has no scanned text (a bug: fail closed rather than forward it).
        """
        at = dict(zip(self.text_paths, self.texts if texts is None else texts, strict=True))
        messages = []
        for i, msg in enumerate(self.body["messages"]):
            out: dict[str, Any] = {"role": msg["role"]}
            content = msg.get("content")
            if isinstance(content, str):
                out["content"] = at["messages", i, "content"]
            elif isinstance(content, list):
                out["content"] = [
                    {"type": "text", "text": at["messages", i, "content", j, "text"]}
                    for j, part in enumerate(content)
                    if part["type"] in TEXT_PART_TYPES
                ]
            else:
                out["content"] = None
            for key in ("name", "tool_call_id"):
                if msg.get(key) is not None:
                    out[key] = at["messages", i, key]
            if msg.get("tool_calls") is not None:
                calls = []
                for j, call in enumerate(msg["tool_calls"]):
                    base: FieldPath = ("messages", i, "tool_calls", j)
                    new: dict[str, Any] = {"type": "function"}
                    if call.get("id") is not None:
                        new["id"] = at[(*base, "id")]
                    new["function"] = {k: at[(*base, "function", k)] for k in ("name", "arguments")}
                    calls.append(new)
                out["tool_calls"] = calls
            if msg.get("function_call") is not None:
                out["function_call"] = {k: at["messages", i, "function_call", k] for k in ("name", "arguments")}
            messages.append(out)
        body: dict[str, Any] = {"messages": messages}
        body |= {k: self.body[k] for k in CLOUD_NUMBERS if self.body.get(k) is not None}
        stop = self.body.get("stop")
        if isinstance(stop, str):
            body["stop"] = at[("stop",)]
        elif isinstance(stop, list) and stop:
            body["stop"] = [at["stop", j] for j in range(len(stop))]
        return body


def decode_body(event: dict[str, Any], max_bytes: int) -> bytes:
    """The raw request body of an HTTP API (payload 2.0) or function URL event.

    Raises:
        BadRequest: missing body, bad base64, or larger than ``max_bytes``.
    """
    raw = event.get("body")
    if raw is None or raw == "":
        raise BadRequest("request body is empty: expected a JSON chat-completions request", code="empty_body")
    if not isinstance(raw, str):
        raise BadRequest("request body must be a string", code="invalid_body")
    if event.get("isBase64Encoded"):
        if len(raw) > (max_bytes * 4) // 3 + 4:
            raise _too_large(max_bytes)
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("request body is not valid base64", code="invalid_body") from None
    else:
        data = raw.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def _too_large(max_bytes: int) -> BadRequest:
    return BadRequest(f"request body is larger than the limit of {max_bytes} bytes", code="body_too_large")


def parse_request(data: bytes) -> ChatRequest:
    """Parse and validate a chat-completions request body.

    Raises:
        BadRequest: not JSON, nested deeper than :data:`MAX_JSON_DEPTH`, an integer longer than
            :data:`MAX_INT_DIGITS` digits, not an object, or a field of the wrong type/value (the message names it).
    """
    body = _loads(data)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    validate.chat_request(body, LIMITS)  # OpenAI's rules, shared with the gateway and the SageMaker handler
    messages = body["messages"]
    fields = _Fields()
    unscannable = False
    for i, msg in enumerate(messages):
        unscannable |= _message(msg, i, fields)
    stop = body.get("stop")
    if isinstance(stop, str):
        fields.add(("stop",), stop, "request")
    elif isinstance(stop, list):
        for j, s in enumerate(stop):
            fields.add(("stop", j), s, "request")
    return ChatRequest(body, fields.texts, fields.roles, unscannable, bool(body.get("stream", False)), fields.paths)


class _Fields:
    """The texts of a request with where each sits (its path in the body) and the role it belongs to."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.roles: list[str] = []
        self.paths: list[FieldPath] = []

    def add(self, path: FieldPath, text: str, role: str) -> None:
        self.texts.append(text)
        self.roles.append(role)
        self.paths.append(path)


def _message(msg: dict[str, Any], i: int, fields: _Fields) -> bool:
    """Collect the texts of ``messages[i]`` (already checked by ``wire.validate``) and check its tool calls; True
    when it holds a part that cannot be scanned."""
    where = f"messages[{i}]"
    role = msg["role"]
    unscannable = False
    content = msg.get("content")
    if isinstance(content, str):
        fields.add(("messages", i, "content"), content, role)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if part["type"] in TEXT_PART_TYPES:
                fields.add(("messages", i, "content", j, "text"), part["text"], role)
            else:
                unscannable = True
    for key in ("name", "tool_call_id"):
        if msg.get(key) is not None:
            _need_str(msg[key], f"{where}.{key}")
            fields.add(("messages", i, key), msg[key], role)
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise BadRequest(f"{where}.tool_calls: expected a list", param=f"{where}.tool_calls", code="invalid_type")
        for j, call in enumerate(calls):
            cwhere = f"{where}.tool_calls[{j}]"
            if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                raise BadRequest(
                    f"{cwhere}: expected an object with a function {{name, arguments}}",
                    param=cwhere,
                    code="invalid_type",
                )
            if call.get("type", "function") != "function":
                raise BadRequest(f"{cwhere}.type: expected function", param=f"{cwhere}.type", code="invalid_value")
            if call.get("id") is not None:
                _need_str(call["id"], f"{cwhere}.id")
                fields.add(("messages", i, "tool_calls", j, "id"), call["id"], role)
            _function(
                call["function"], f"{cwhere}.function", ("messages", i, "tool_calls", j, "function"), role, fields
            )
    if msg.get("function_call") is not None:
        fc = msg["function_call"]
        if not isinstance(fc, dict):
            raise BadRequest(
                f"{where}.function_call: expected an object {{name, arguments}}",
                param=f"{where}.function_call",
                code="invalid_type",
            )
        _function(fc, f"{where}.function_call", ("messages", i, "function_call"), role, fields)
    return unscannable


def _function(fn: dict[str, Any], where: str, path: FieldPath, role: str, fields: _Fields) -> None:
    for key in ("name", "arguments"):
        _need_str(fn.get(key), f"{where}.{key}")
        value = fn[key]
        if key == "arguments" and "\\u" in value:
            value = _unescape_arguments(value)
        fields.add((*path, key), value, role)


_JSON_U_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?")


def _unescape_arguments(arguments: str) -> str:
    """Tool-call arguments (JSON text) with ``\\uXXXX`` escapes written as the characters they stand for.

    ``{"card": "\\u516d\\u4e8c..."}`` hides its characters from detection; the same JSON with the characters
    written out means the same to any parser, so that is what is scanned and what the cloud receives. Quotes,
    backslashes and control characters stay escaped; arguments that are not JSON are left as they are.
    """
    try:
        json.loads(arguments)
    except (ValueError, RecursionError):
        return arguments

    def repl(m: re.Match[str]) -> str:
        cp = int(m.group(2), 16)
        if m.group(3) and 0xD800 <= cp <= 0xDBFF:
            cp = 0x10000 + ((cp - 0xD800) << 10) + (int(m.group(3), 16) - 0xDC00)
        elif 0xD800 <= cp <= 0xDFFF or m.group(3):
            return m.group()
        char = chr(cp)
        if char in '"\\' or cp < 0x20:
            return m.group()
        return m.group(1) + char

    return _JSON_U_ESCAPE.sub(repl, arguments)


def _need_str(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise BadRequest(f"{where}: expected a string", param=where, code="invalid_type")


class _LongInt(str):
    """An integer literal too long to convert (Python refuses over 4,300 digits); reported with its field."""


def _parse_int(literal: str) -> int | _LongInt:
    if len(literal) > MAX_INT_DIGITS + 1:  # + 1: a minus sign
        return _LongInt(literal)
    return int(literal)


def _loads(data: bytes) -> Any:
    """``json.loads`` with bounded nesting and integer size; each violation is a 400 naming where it is."""
    try:
        body = json.loads(data, parse_int=_parse_int)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        where = _deep_path(data.decode("utf-8", "replace"))
        raise BadRequest(
            f"{where or 'request body'}: JSON nested deeper than {MAX_JSON_DEPTH} levels",
            param=where,
            code="too_deep",
        ) from None
    # Iterative walk (no recursion of our own): depth and over-long integers, with the path of the first offender.
    stack: list[tuple[Any, FieldPath]] = [(body, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict | list) and len(path) >= MAX_JSON_DEPTH:
            where = format_path(path)
            raise BadRequest(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels", param=where, code="too_deep")
        if isinstance(node, dict):
            stack.extend((v, (*path, k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
        elif isinstance(node, _LongInt):
            where = format_path(path) or "request body"
            raise BadRequest(
                f"{where}: integer longer than {MAX_INT_DIGITS} digits",
                param=format_path(path) or None,
                code="invalid_value",
            )
    return body


def format_path(path: FieldPath) -> str:
    """``("messages", 0, "content")`` -> ``messages[0].content``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _deep_path(text: str) -> str | None:
    """The path at which ``text`` (JSON too deep to parse) first exceeds :data:`MAX_JSON_DEPTH`; None at the top."""
    path: list[str | int] = []
    key: str | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if path and isinstance(path[-1], str):
                key = text[i + 1 : j]
            i = j + 1
            continue
        if c in "[{":
            if len(path) >= MAX_JSON_DEPTH:
                return format_path(tuple(path)) or None
            if path and isinstance(path[-1], str) and key is not None:
                path[-1] = key
            path.append(0 if c == "[" else "")
        elif c in "]}":
            if path:
                path.pop()
        elif c == "," and path and isinstance(path[-1], int):
            path[-1] += 1
        i += 1
    return None


def as_sse(completion: dict[str, Any]) -> str:
    """A finished completion as ``chat.completion.chunk`` server-sent events (``wire.build`` / ``wire.sse``).

    Lambda behind an HTTP API buffers the whole response, so a client that asked for ``stream`` gets the answer in
    one content chunk, then the finish chunk (with the usage) and ``[DONE]``: the shape OpenAI clients parse.
    """
    rid, model, created = completion.get("id", ""), completion.get("model", ""), completion.get("created", 0)
    events = []
    for choice in completion.get("choices", []):
        content = (choice.get("message") or {}).get("content") or ""
        idx = choice.get("index", 0)
        events.append(build.chunk("chat", rid, model, content, first=True, index=idx, created=created))
        events.append(build.chunk("chat", rid, model, None, choice.get("finish_reason"), index=idx, created=created))
    if completion.get("usage"):
        events.append(build.chunk("chat", rid, model, None, usage_=completion["usage"], created=created))
    return (b"".join(sse.event(e) for e in events) + sse.DONE).decode()
