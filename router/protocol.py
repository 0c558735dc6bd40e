"""The OpenAI chat-completions request the router accepts, validated without third-party libraries.

Every rejection is a :class:`~router.errors.BadRequest` naming the field (``messages[2].content``) and what is allowed.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from router.errors import BadRequest

ROLES = ("system", "user", "assistant", "tool", "developer")
TEXT_PART_TYPES = ("text", "input_text")


@dataclass(frozen=True)
class ChatRequest:
    """A validated request.

    Attributes:
        body: the parsed JSON object (forwarded to the local gateway as is).
        texts: every text in the messages, in order (what detection scans).
        text_roles: the role of each entry of ``texts``.
        unscannable: some message part is not text (image, audio, file).
        stream: the client asked for server-sent events.
    """

    body: dict[str, Any]
    texts: list[str]
    text_roles: list[str]
    unscannable: bool
    stream: bool


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
        BadRequest: not JSON, not an object, or a field of the wrong type/value (the message names it).
    """
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_type")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(
            "messages: required, a non-empty list of {role, content}", param="messages", code="invalid_value"
        )
    texts: list[str] = []
    roles: list[str] = []
    unscannable = False
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise BadRequest(f"{where}: expected an object with role and content", param=where, code="invalid_type")
        role = msg.get("role")
        if role not in ROLES:
            raise BadRequest(
                f"{where}.role: expected one of {', '.join(ROLES)}", param=f"{where}.role", code="invalid_value"
            )
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
            roles.append(role)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                pwhere = f"{where}.content[{j}]"
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise BadRequest(f"{pwhere}: expected an object with a type", param=pwhere, code="invalid_type")
                if part["type"] in TEXT_PART_TYPES:
                    if not isinstance(part.get("text"), str):
                        raise BadRequest(
                            f"{pwhere}.text: expected a string", param=f"{pwhere}.text", code="invalid_type"
                        )
                    texts.append(part["text"])
                    roles.append(role)
                else:
                    unscannable = True
        elif content is None and role in ("assistant", "tool"):
            continue
        else:
            raise BadRequest(
                f"{where}.content: expected a string or a list of parts", param=f"{where}.content", code="invalid_type"
            )
        if msg.get("tool_calls") is not None or msg.get("function_call") is not None:
            # Tool-call arguments are free text too: scan them as such.
            texts.append(json.dumps([msg.get("tool_calls"), msg.get("function_call")], ensure_ascii=False))
            roles.append(role)
    _check_optional(body)
    return ChatRequest(body, texts, roles, unscannable, bool(body.get("stream", False)))


def _check_optional(body: dict[str, Any]) -> None:
    checks: tuple[tuple[str, tuple[type, ...], str], ...] = (
        ("model", (str,), "a string"),
        ("max_tokens", (int,), "a positive integer"),
        ("max_completion_tokens", (int,), "a positive integer"),
        ("temperature", (int, float), "a number between 0 and 2"),
        ("top_p", (int, float), "a number between 0 and 1"),
        ("stream", (bool,), "true or false"),
        ("stop", (str, list), "a string or a list of strings"),
    )
    for name, types, allowed in checks:
        if name not in body or body[name] is None:
            continue
        v = body[name]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if ok and name in ("max_tokens", "max_completion_tokens"):
            ok = v > 0
        elif ok and name == "temperature":
            ok = 0 <= v <= 2
        elif ok and name == "top_p":
            ok = 0 <= v <= 1
        elif ok and name == "stop" and isinstance(v, list):
            ok = len(v) <= 4 and all(isinstance(s, str) for s in v)
        if not ok:
            raise BadRequest(f"{name}: expected {allowed}", param=name, code="invalid_value")


def completion_body(text: str, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object for one answer."""
    usage = None
    if prompt_tokens is not None and completion_tokens is not None:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage,
    }


def as_sse(completion: dict[str, Any]) -> str:
    """A finished completion as ``chat.completion.chunk`` server-sent events.

    Lambda behind an HTTP API buffers the whole response, so a client that asked for ``stream`` gets the answer in
    one content chunk, then the finish chunk and ``[DONE]``: the shape OpenAI clients parse.
    """
    base = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    events = []
    for choice in completion.get("choices", []):
        content = (choice.get("message") or {}).get("content") or ""
        idx = choice.get("index", 0)
        delta = {"role": "assistant", "content": content}
        events.append(base | {"choices": [{"index": idx, "delta": delta, "finish_reason": None}]})
        events.append(
            base | {"choices": [{"index": idx, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}]}
        )
    return "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events) + "data: [DONE]\n\n"
