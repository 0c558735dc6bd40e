"""OpenAI response builders: ids, usage, whole ``chat.completion`` / ``text_completion`` bodies and stream chunks.

They return plain dicts; the caller serialises them (``json.dumps`` or a faster encoder) and frames chunks with
:func:`wire.sse.event`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

Kind = Literal["chat", "completion"]
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")
# What other model servers say instead (SageMaker LMI / TGI report why generation ended in their own words).
FINISH_REASON_ALIASES = {"eos_token": "stop", "stop_sequence": "stop"}


def openai_finish_reason(reason: str | None) -> str | None:
    """``reason`` in OpenAI's words where a known server alias exists (``eos_token`` -> ``stop``); else unchanged."""
    return FINISH_REASON_ALIASES.get(reason, reason) if isinstance(reason, str) else reason


def new_id(kind: str) -> str:
    """A fresh ``chatcmpl-…`` / ``cmpl-…`` id."""
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"


def usage(prompt: int, completion: int) -> dict[str, int]:
    """The ``usage`` object."""
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def choice(kind: str, text: str, finish: str | None, index: int = 0, logprobs: Any = None) -> dict[str, Any]:
    """One choice of a whole answer; ``finish`` None means the generation stopped normally (``stop``)."""
    if kind == "chat":
        return {
            "index": index,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish or "stop",
            "logprobs": logprobs,
        }
    return {"index": index, "text": text, "finish_reason": finish or "stop", "logprobs": logprobs}


def completion(
    kind: str,
    model: str,
    choices: list[dict[str, Any]],
    prompt_tokens: int,
    completion_tokens: int,
    rid: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A whole ``chat.completion`` / ``text_completion`` body from its choices (see :func:`choice`)."""
    return {
        "id": rid or new_id(kind),
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": choices,
        "usage": usage(prompt_tokens, completion_tokens),
    }


def full_response(
    kind: str,
    model: str,
    text: str,
    finish: str | None,
    prompt: int,
    completion_tokens: int,
    rid: str | None = None,
    logprobs: Any = None,
) -> dict[str, Any]:
    """A one-choice answer body (``logprobs``: the choice's logprobs object, None when not asked for)."""
    return completion(kind, model, [choice(kind, text, finish, logprobs=logprobs)], prompt, completion_tokens, rid)


def chunk(
    kind: str,
    rid: str,
    model: str,
    text: str | None,
    finish: str | None = None,
    first: bool = False,
    usage_: dict[str, int] | None = None,
    index: int = 0,
    created: int | None = None,
    logprobs: Any = None,
) -> dict[str, Any]:
    """One stream chunk (``chat.completion.chunk`` / ``text_completion``).

    ``text`` None and ``finish`` None make a chunk with no choices (the final usage chunk); ``first`` adds the
    assistant role to a chat delta.
    """
    choices: list[dict[str, Any]]
    if text is None and finish is None:
        choices = []
    elif kind == "chat":
        delta: dict[str, Any] = {"content": text} if text is not None else {}
        if first:
            delta["role"] = "assistant"
        choices = [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]
    else:
        choices = [{"index": index, "text": text or "", "finish_reason": finish, "logprobs": logprobs}]
    obj: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": choices,
    }
    if usage_ is not None:
        obj["usage"] = usage_
    return obj


def model_list(models: Sequence[dict[str, Any] | str], owned_by: str = "llm-deploy") -> dict[str, Any]:
    """A ``/v1/models`` body; entries are names or dicts with ``id`` and any extra fields (``max_model_len``)."""
    now = int(time.time())
    data = []
    for m in models:
        extra = {"id": m} if isinstance(m, str) else m
        data.append({"id": extra["id"], "object": "model", "created": now, "owned_by": owned_by, **extra})
    return {"object": "list", "data": data}


def chunk_text(kind: str, obj: dict[str, Any]) -> str:
    """The text a stream chunk carries (first choice), '' when none."""
    choices = obj.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    c = choices[0]
    if kind == "chat":
        delta = c.get("delta") or {}
        return str(delta.get("content") or "") if isinstance(delta, dict) else ""
    return str(c.get("text") or "")


def answer_text(kind: str, obj: dict[str, Any]) -> str:
    """The text of a whole answer's first choice.

    Raises:
        KeyError, IndexError, TypeError: the body is not an OpenAI answer.
    """
    c = obj["choices"][0]
    return str((c["message"]["content"] if kind == "chat" else c["text"]) or "")
