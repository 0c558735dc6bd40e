"""A blocking front for the engine, for callers without an event loop (the SageMaker handler's worker threads).

One event loop runs in a daemon thread; :meth:`SyncEngine.generate` submits a request to it and waits. Requests
from any number of threads meet in the engine's continuous batch.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from local.embedded.api import GenerationRequest, TokenLogprob
from local.embedded.engine import EmbeddedEngine
from local.embedded.settings import EmbeddedSettings


@dataclass(frozen=True)
class Generation:
    """A finished generation."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()


class SyncEngine:
    """Starts an :class:`EmbeddedEngine` on its own loop thread and serves blocking calls.

    Args:
        settings: the engine settings.
        start_timeout_s: how long :meth:`__init__` waits for the model to load.
    Raises:
        EngineSetupError: the settings cannot work here (raised from the constructor).
    """

    def __init__(self, settings: EmbeddedSettings, start_timeout_s: float | None = None) -> None:
        self.engine = EmbeddedEngine(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-loop", daemon=True)
        self._thread.start()
        try:
            self._submit(self.engine.start()).result(start_timeout_s)
        except BaseException:
            self.close()
            raise

    def _submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _collect(self, request: GenerationRequest) -> Generation:
        parts: list[str] = []
        logprobs: list[TokenLogprob] = []
        async for chunk in self.engine.stream(request):
            parts.append(chunk.text)
            logprobs.extend(chunk.logprobs)
            if chunk.finish_reason is not None:
                return Generation(
                    "".join(parts), chunk.finish_reason, chunk.prompt_tokens, chunk.completion_tokens, tuple(logprobs)
                )
        raise RuntimeError("generation ended without a finish reason")

    async def _collect_all(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        tasks = [asyncio.ensure_future(self._collect(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:  # one failed: stop the others' generation too (frees their slots)
                task.cancel()

    def generate(self, request: GenerationRequest, timeout_s: float | None = None) -> Generation:
        """Generate to the end (blocking).

        Raises:
            InvalidRequestError: a field out of range or too long a prompt.
            EmbeddedEngineError: the engine stopped.
        """
        return self.generate_many([request], timeout_s)[0]

    def generate_many(self, requests: Sequence[GenerationRequest], timeout_s: float | None = None) -> list[Generation]:
        """Generate several requests together (they share the batch); results in order."""
        future = self._submit(self._collect_all(requests))
        try:
            result: list[Generation] = future.result(timeout_s)
        except TimeoutError:
            future.cancel()  # cancels the collecting tasks, which frees their batch slots
            raise
        return result

    def close(self) -> None:
        """Stop the engine and the loop thread."""
        if self._loop.is_running():
            try:
                self._submit(self.engine.stop()).result(60)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
