"""The SageMaker endpoint's answer as the OpenAI ``chat.completion`` the router returns, kept faithful.

The endpoint (``inference/``) takes an OpenAI chat body with ``messages`` at ``/invocations``, applies the model's
chat template exactly like the local route, and answers a ``chat.completion``. Nothing is invented here: content,
``finish_reason`` and usage are passed on as the model server reported them, after checking their shape; the body is
built with ``wire.build`` like every other OpenAI answer in the project.
"""

from __future__ import annotations

import json
from typing import Any

from router.errors import TargetUnavailable
from wire import build
from wire.errors import parse_error_body

FINISH_REASONS = build.FINISH_REASONS


def from_endpoint(raw: bytes, model: str) -> dict[str, Any]:
    """Check and pass on the endpoint's ``chat.completion``.

    Args:
        raw: the endpoint's response body.
        model: the model name to report (the endpoint name; the handler puts back the client's ``model``).

    Returns:
        A ``chat.completion`` body with the endpoint's choices (content, finish_reason) and usage.

    Raises:
        TargetUnavailable: the answer is not JSON or not a well-formed ``chat.completion`` with usage.
    """
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TargetUnavailable("SageMaker answer is not JSON", code="cloud_bad_answer") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise TargetUnavailable("SageMaker answer is not a chat.completion (no choices)", code="cloud_bad_answer")
    out_choices = [_choice(c, i) for i, c in enumerate(choices)]
    prompt, completion = _usage(data.get("usage"))
    return build.completion(
        "chat",
        model,
        out_choices,
        prompt,
        completion,
        rid=data["id"] if isinstance(data.get("id"), str) else None,
        created=data["created"] if isinstance(data.get("created"), int) else None,
    )


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
    out = build.choice("chat", msg.get("content"), reason, index=choice.get("index", i))  # type: ignore[arg-type]
    if isinstance(msg.get("tool_calls"), list):
        out["message"]["tool_calls"] = msg["tool_calls"]
    return out


def _usage(usage: Any) -> tuple[int, int]:
    """``(prompt_tokens, completion_tokens)`` as the endpoint counted them."""
    if not isinstance(usage, dict) or not all(
        isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool) and usage[k] >= 0
        for k in ("prompt_tokens", "completion_tokens")
    ):
        raise TargetUnavailable("SageMaker answer: usage is missing or not token counts", code="cloud_bad_answer")
    return usage["prompt_tokens"], usage["completion_tokens"]


def openai_error(raw: bytes, default: str) -> tuple[str, str | None, str | None]:
    """``(message, param, code)`` of an OpenAI error body (``wire.errors``), or ``default`` when it is not one."""
    err = parse_error_body(raw)
    if err is None:
        return default, None, None
    return err["message"] or default, err["param"], err["code"]
