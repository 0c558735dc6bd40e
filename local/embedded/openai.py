"""OpenAI request bodies to :class:`GenerationRequest`, for every front end of the generation core.

The gateway's adapter (``local/engines/embedded.py``) and the SageMaker handler (``inference/inference.py``) both
call :func:`generation_request`, so what the engine honours, what it refuses (a 400 naming the field rather than a
silent 200) and how logprobs are shaped is decided once, here. Callers check bodies against OpenAI's rules first
(:mod:`wire.validate`, or the gateway's request models); ranges are the engine's (``EmbeddedEngine.stream``). Only
the fields no OpenAI rule covers (vLLM's ``min_tokens`` / ``ignore_eos``) get their type checked here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from local.embedded.api import GenerationRequest, TokenLogprob
from local.embedded.errors import InvalidRequestError, UnsupportedFieldError
from wire.validate import COMPLETION_LOGPROBS_MAX

Kind = Literal["chat", "completion"]
# OpenAI's limit for completions' integer ``logprobs`` (chat's ``top_logprobs`` goes to 20, checked by the engine).
MAX_COMPLETION_LOGPROBS = COMPLETION_LOGPROBS_MAX
# Fields this engine cannot honour, refused when set to anything but their neutral value.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "functions": (None, []),
    "tool_choice": (None, "none"),
    "function_call": (None, "none"),
    "echo": (None, False),
    "best_of": (None, 1),
    "suffix": (None, ""),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "repetition_penalty": (None, 1, 1.0),
    "top_k": (None, 0, -1),
    "min_p": (None, 0, 0.0),
    "audio": (None,),
    "prediction": (None,),
    "modalities": (None, ["text"]),
    "web_search_options": (None,),
    "guided_json": (None,),
    "guided_regex": (None,),
    "guided_choice": (None,),
    "guided_grammar": (None,),
    "prompt_logprobs": (None, 0),
    "stop_token_ids": (None, []),
}


def check_supported(body: Mapping[str, Any]) -> None:
    """Refuse fields the engine would otherwise ignore.

    Raises:
        UnsupportedFieldError: naming the first such field (``messages[1].content[0].type`` for an image part).
    """
    for name, neutral in _NEUTRAL.items():
        value = body.get(name)
        if not any(value == n and type(value) is type(n) for n in neutral):
            raise UnsupportedFieldError(name, f"is not supported by the embedded engine (got {value!r}); remove it")
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                continue
            if msg.get("tool_calls"):
                raise UnsupportedFieldError(f"messages[{i}].tool_calls", "tool calls are not supported by this engine")
            content = msg.get("content")
            if isinstance(content, list):
                for j, part in enumerate(content):
                    kind = part.get("type") if isinstance(part, dict) else None
                    if kind != "text":
                        raise UnsupportedFieldError(
                            f"messages[{i}].content[{j}].type",
                            f"{kind!r} parts are not supported by this text-only engine; send text parts",
                        )


def message_text(content: Any) -> str:
    """A message's text: the string, or its text parts joined (call :func:`check_supported` first)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))


def _int(body: Mapping[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(name, f"expected an integer, got {type(value).__name__}")
    return value


def _bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequestError(name, f"expected true or false, got {type(value).__name__}")
    return value


def _logprobs(body: Mapping[str, Any], kind: Kind) -> int | None:
    if kind == "chat":
        wanted = _bool(body, "logprobs")
        top = _int(body, "top_logprobs", 0)
        if body.get("top_logprobs") is not None and not wanted:
            raise InvalidRequestError("top_logprobs", "needs logprobs: true")
        return top if wanted else None
    value = body.get("logprobs")
    if value is None:
        return None
    count = _int(body, "logprobs", 0)
    if not 0 <= count <= MAX_COMPLETION_LOGPROBS:
        raise InvalidRequestError("logprobs", f"{count} is out of range; allowed 0..{MAX_COMPLETION_LOGPROBS}")
    return count


def generation_request(
    body: Mapping[str, Any],
    kind: Kind,
    max_tokens: int,
    messages: Sequence[Mapping[str, Any]] | None = None,
    truncate: bool = False,
) -> GenerationRequest:
    """The engine request for an OpenAI chat or completions body.

    Args:
        body: the request body (already parsed JSON).
        kind: ``chat`` (``messages``) or ``completion`` (``prompt``).
        max_tokens: the token limit the caller settled on (its default applied).
        messages: chat messages to use instead of ``body["messages"]`` (the gateway adds retry feedback).
        truncate: keep the end of an over-long prompt instead of refusing it.
    Raises:
        UnsupportedFieldError: a field the engine cannot honour.
        InvalidRequestError: a malformed field the engine reads.
    """
    check_supported(body)
    stop = body.get("stop")
    temperature, top_p = body.get("temperature"), body.get("top_p")
    common: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": 1.0 if temperature is None else float(temperature),
        "top_p": 1.0 if top_p is None else float(top_p),
        "stop": [] if stop is None else [stop] if isinstance(stop, str) else list(stop),
        "seed": body.get("seed"),
        "min_tokens": _int(body, "min_tokens", 0),
        "ignore_eos": _bool(body, "ignore_eos"),
        "logprobs": _logprobs(body, kind),
        "truncate": truncate,
    }
    if kind == "chat":
        source = body.get("messages") if messages is None else messages
        if not isinstance(source, list | tuple) or not source:
            raise InvalidRequestError("messages", "expected a non-empty list of messages")
        msgs = []
        for i, m in enumerate(source):
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                raise InvalidRequestError(f"messages[{i}]", "expected an object with a role and content")
            msgs.append({"role": m["role"], "content": message_text(m.get("content"))})
        return GenerationRequest(messages=msgs, **common)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequestError("prompt", "expected one non-empty string")
    return GenerationRequest(prompt=prompt, **common)


def logprobs_json(kind: Kind, entries: Sequence[TokenLogprob], text_offset: int = 0) -> dict[str, Any]:
    """OpenAI's ``choices[].logprobs`` for these tokens: chat's ``{"content": [...]}`` or completions' lists.

    Args:
        kind: chat or completion.
        entries: the tokens, in order.
        text_offset: completions only: character offset of the first token in the whole answer.
    """
    if kind == "chat":
        return {
            "content": [
                {
                    "token": e.token,
                    "logprob": e.logprob,
                    "bytes": list(e.token.encode("utf-8")),
                    "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in e.top],
                }
                for e in entries
            ]
        }
    offsets, pos = [], text_offset
    for e in entries:
        offsets.append(pos)
        pos += len(e.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [dict(e.top) for e in entries],
        "text_offset": offsets,
    }
