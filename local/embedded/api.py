"""The contract between the embedded engine and the gateway's adapter for it.

The gateway (``local/engines/embedded.py``) builds a :class:`GenerationRequest` from an OpenAI request, iterates
:meth:`EmbeddedEngineProtocol.stream` and turns the chunks into OpenAI responses/SSE. The engine
(``local/embedded/engine.py``) owns tokenization, chat templates, batching and the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True)
class GenerationRequest:
    """One generation. Exactly one of ``prompt`` (completions) or ``messages`` (chat) is set.

    ``min_tokens``: end-of-sequence tokens are ruled out until this many tokens exist (stop strings still apply).
    ``ignore_eos``: generate through end-of-sequence tokens until ``max_tokens`` or a stop string.
    ``logprobs``: None for none; ``k`` for the chosen token's log-probability plus the ``k`` most likely tokens'.
    ``truncate``: keep the end of an over-long prompt instead of rejecting it (the SageMaker handler's
    TRUNCATE_INPUT); the gateway always rejects.
    """

    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    min_tokens: int = 0
    ignore_eos: bool = False
    logprobs: int | None = None
    truncate: bool = False


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's text and log-probability, and the most likely alternatives ``(text, logprob)``."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of output. The last chunk has ``finish_reason`` set and the final token counts.

    ``logprobs`` holds the tokens generated since the previous chunk when the request asked for them.
    """

    text: str
    finish_reason: Literal["stop", "length"] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: tuple[TokenLogprob, ...] = ()


class EmbeddedEngineProtocol(Protocol):
    """What the gateway needs from the embedded engine."""

    @property
    def model_name(self) -> str: ...

    async def start(self) -> None:
        """Load the model and start the batching loop; returns when ready to serve."""

    async def stop(self) -> None:
        """Stop the loop and free the model; pending requests end with an error."""

    def ready(self) -> bool:
        """True once started and the batching loop is alive."""

    def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Yield chunks as tokens are generated. Cancelling the iteration frees the request's batch slot."""
