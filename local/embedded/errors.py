"""Errors the embedded engine raises; the gateway maps them to OpenAI error bodies."""

from __future__ import annotations


class EmbeddedEngineError(RuntimeError):
    """The engine cannot serve right now (not started, stopped, or the model loop failed)."""


class EngineSetupError(ValueError):
    """Settings that cannot work on this machine (missing model directory, no CUDA, no bitsandbytes).

    The message starts with the settings field at fault and says what is allowed.
    """


class InvalidRequestError(ValueError):
    """A generation request the engine rejects; ``param`` names the request field (OpenAI's ``param``).

    Args:
        param: the offending field, e.g. ``max_tokens``.
        message: what is wrong and what is allowed.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class PromptTooLongError(InvalidRequestError):
    """The prompt has more tokens than the engine's ``max_input_tokens`` (HTTP 400 in OpenAI; the SageMaker
    handler answers 413 as it always has)."""


class UnsupportedFieldError(InvalidRequestError):
    """A request field the engine cannot honour (tools, echo, image parts, ...): refused rather than ignored."""
