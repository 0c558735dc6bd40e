"""The SageMaker endpoint's answer as the OpenAI ``chat.completion`` the router returns, kept faithful.

The endpoint (``inference/``) takes an OpenAI chat body with ``messages`` at ``/invocations``, applies the model's
chat template exactly like the local route, and answers a ``chat.completion``. Nothing is invented here: content,
``finish_reason`` and usage are passed on as the model server reported them, after checking their shape.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from router.errors import TargetUnavailable

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def from_endpoint(raw: bytes, model: str) -> dict[str, Any]:
    """Check and pass on the endpoint's ``chat.completion``.

    Args:
        raw: the endpoint's response body.
        model: the model name to report (the client's ``model``, or the endpoint name).

    Returns:
        A ``chat.completion`` body with the endpoint's choices (content, finish_reason) and usage.

    Raises:
        TargetUnavailable: the answer is not JSON or not a well-formed ``chat.completion``.
    """
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TargetUnavailable("SageMaker answer is not JSON", code="cloud_bad_answer") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise TargetUnavailable("SageMaker answer is not a chat.completion (no choices)", code="cloud_bad_answer")
    out_choices = [_choice(c, i) for i, c in enumerate(choices)]
    return {
        "id": data["id"] if isinstance(data.get("id"), str) else f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": data["created"] if isinstance(data.get("created"), int) else int(time.time()),
        "model": model,
        "choices": out_choices,
        "usage": _usage(data.get("usage")),
    }


def _choice(choice: Any, i: int) -> dict[str, Any]:
    msg = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(msg, dict) or not isinstance(msg.get("content"), str | None):
        raise TargetUnavailable(f"SageMaker answer: choices[{i}].message has no content", code="cloud_bad_answer")
    reason = choice.get("finish_reason")
    if reason not in FINISH_REASONS:
        raise TargetUnavailable(
            f"SageMaker answer: choices[{i}].finish_reason {reason!r} is not one of {', '.join(FINISH_REASONS)}",
            code="cloud_bad_answer",
        )
    message: dict[str, Any] = {"role": "assistant", "content": msg.get("content")}
    if isinstance(msg.get("tool_calls"), list):
        message["tool_calls"] = msg["tool_calls"]
    return {"index": choice.get("index", i), "message": message, "finish_reason": reason}


def _usage(usage: Any) -> dict[str, int] | None:
    if usage is None:
        return None
    if not isinstance(usage, dict) or not all(
        isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool) and usage[k] >= 0 for k in USAGE_KEYS[:2]
    ):
        raise TargetUnavailable("SageMaker answer: usage is not token counts", code="cloud_bad_answer")
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def openai_error(raw: bytes, default: str) -> tuple[str, str | None, str | None]:
    """``(message, param, code)`` of an OpenAI error body, or ``default`` when it is not one."""
    try:
        err = json.loads(raw)["error"]
        return str(err.get("message") or default), err.get("param"), err.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        return default, None, None
