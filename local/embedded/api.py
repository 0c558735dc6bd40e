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
    """One generation. Exactly one of ``prompt`` (completions) or ``messages`` (chat) is set."""

    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of output. The last chunk has ``finish_reason`` set and the final token counts."""

    text: str
    finish_reason: Literal["stop", "length"] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


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
