"""The embedded engine: a local transformers model behind :class:`~local.embedded.api.EmbeddedEngineProtocol`.

The gateway's event loop only tokenizes and awaits a queue; the model runs in the scheduler's own thread
(:mod:`local.embedded.scheduler`), which batches every request in flight.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import random
from collections.abc import AsyncIterator
from typing import Any

import torch

from local.embedded.api import GenerationChunk, GenerationRequest
from local.embedded.cpu import default_cpu_threads
from local.embedded.errors import EmbeddedEngineError, InvalidRequestError, PromptTooLongError
from local.embedded.loading import (
    Placement,
    eos_token_ids,
    load_model_and_tokenizer,
    resolve_placement,
    served_model_name,
)
from local.embedded.sampling import SEED_MODULUS
from local.embedded.scheduler import BatchScheduler, Sequence
from local.embedded.settings import EmbeddedSettings
from local.embedded.text import IncrementalDetokenizer, StopStringMatcher
from wire.validate import MAX_STOP, TEMPERATURE_MAX, TOP_LOGPROBS_MAX

# OpenAI's limits on the sampling fields, from the project's one wire module, so every entry point agrees.
MAX_TEMPERATURE = TEMPERATURE_MAX
MAX_STOP_STRINGS = MAX_STOP
MAX_TOP_LOGPROBS = TOP_LOGPROBS_MAX


class EmbeddedEngine:
    """Serves one local model directory with continuous batching and token streaming.

    Args:
        settings: what to load and how; checked against the machine at once (no model is loaded until start).
    Raises:
        EngineSetupError: the settings cannot work here (missing model files, no CUDA, no bitsandbytes).
    """

    def __init__(self, settings: EmbeddedSettings) -> None:
        self._settings = settings
        self._placement: Placement = resolve_placement(settings)
        self._name = served_model_name(settings)
        self._tokenizer: Any = None
        self._decode_tokenizer: Any = None
        self._model: Any = None
        self._scheduler: BatchScheduler | None = None
        self._start_lock = asyncio.Lock()

    @property
    def model_name(self) -> str:
        """The model id clients send."""
        return self._name

    @property
    def settings(self) -> EmbeddedSettings:
        """The settings the engine was built with."""
        return self._settings

    @property
    def placement(self) -> Placement:
        """Resolved device, dtype and compile choice."""
        return self._placement

    async def start(self) -> None:
        """Load the model and tokenizer (in a worker thread) and start the batching loop; idempotent.

        Raises:
            EngineSetupError: the model directory cannot be loaded.
        """
        async with self._start_lock:
            if self._scheduler is not None and self._scheduler.alive():
                return
            if self._placement.device.type == "cpu":
                # Process-wide: the model thread's matmuls use this many threads (see local.embedded.cpu).
                torch.set_num_threads(self._settings.cpu_threads or default_cpu_threads())
            model, tokenizer = await asyncio.to_thread(load_model_and_tokenizer, self._settings, self._placement)
            scheduler = BatchScheduler(self._settings, self._placement, model, eos_token_ids(model, tokenizer))
            await asyncio.wrap_future(scheduler.start())
            # The model thread detokenizes while the event loop tokenizes: a Rust tokenizer shared by two threads can
            # fail with "Already borrowed", so each side gets its own copy.
            self._decode_tokenizer = copy.deepcopy(tokenizer)
            self._model, self._tokenizer, self._scheduler = model, tokenizer, scheduler

    async def stop(self) -> None:
        """Stop the loop (pending requests end with :class:`EmbeddedEngineError`) and release the model."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await asyncio.to_thread(scheduler.stop)
        self._model = None
        gc.collect()
        if self._placement.device.type == "cuda":
            torch.cuda.empty_cache()

    def ready(self) -> bool:
        """True once started and while the batching loop is alive."""
        return self._scheduler is not None and self._scheduler.alive()

    @property
    def compiled(self) -> bool:
        """Whether the model steps actually run compiled (a failed compile falls back to eager)."""
        return self._scheduler is not None and self._scheduler.compiled

    @property
    def compile_error(self) -> str | None:
        """Why compiling failed, when it did."""
        return None if self._scheduler is None else self._scheduler.compile_error

    def decode_batch_sizes(self, clear: bool = False) -> list[int]:
        """Sequences in each recent decode step (up to the last 4096 steps); ``clear`` starts a new record."""
        if self._scheduler is None:
            return []
        sizes = list(self._scheduler.decode_sizes)
        if clear:
            self._scheduler.decode_sizes.clear()
        return sizes

    def slots_in_use(self) -> int:
        """Batch slots held by requests right now (for metrics and tests)."""
        return 0 if self._scheduler is None else self._scheduler.slots_in_use()

    def prompt_token_ids(self, request: GenerationRequest) -> list[int]:
        """Token ids the engine feeds the model for ``request`` (chat requests go through the chat template).

        Raises:
            InvalidRequestError: neither or both of prompt/messages, no chat template, or too long a prompt.
            EmbeddedEngineError: the engine is not started.
        """
        tokenizer = self._require_tokenizer()
        if (request.prompt is None) == (request.messages is None):
            raise InvalidRequestError("messages", "set exactly one of prompt (completions) or messages (chat)")
        if request.messages is not None:
            if not request.messages:
                raise InvalidRequestError("messages", "must hold at least one message")
            if not getattr(tokenizer, "chat_template", None):
                raise InvalidRequestError("messages", f"model {self._name!r} has no chat template; use completions")
            text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            ids = list(tokenizer(request.prompt)["input_ids"])
        if not ids:
            bos = getattr(tokenizer, "bos_token_id", None)
            if bos is None:
                raise InvalidRequestError("prompt", "is empty and the tokenizer has no BOS token to start from")
            ids = [int(bos)]
        limit = self._settings.max_input_tokens
        if len(ids) > limit:
            if request.truncate:
                return ids[-limit:]  # keep the end: the most recent text matters most to a causal LM
            param = "messages" if request.messages is not None else "prompt"
            raise PromptTooLongError(param, f"is {len(ids)} tokens; this engine accepts at most {limit}")
        return ids

    def _require_tokenizer(self) -> Any:
        if self._tokenizer is None or self._scheduler is None:
            raise EmbeddedEngineError("embedded engine is not started")
        return self._tokenizer

    def _validate(self, request: GenerationRequest) -> None:
        limit = self._settings.max_new_tokens_limit
        if not 1 <= request.max_tokens <= limit:
            raise InvalidRequestError("max_tokens", f"{request.max_tokens} is out of range; allowed 1..{limit}")
        if not 0.0 <= request.temperature <= MAX_TEMPERATURE:
            raise InvalidRequestError(
                "temperature", f"{request.temperature} is out of range; allowed 0..{MAX_TEMPERATURE:g}"
            )
        if not 0.0 < request.top_p <= 1.0:
            raise InvalidRequestError("top_p", f"{request.top_p} is out of range; allowed (0, 1]")
        if len(request.stop) > MAX_STOP_STRINGS or any(not isinstance(s, str) for s in request.stop):
            raise InvalidRequestError("stop", f"expected up to {MAX_STOP_STRINGS} strings")
        if not 0 <= request.min_tokens <= request.max_tokens:
            raise InvalidRequestError(
                "min_tokens", f"{request.min_tokens} is out of range; allowed 0..max_tokens ({request.max_tokens})"
            )
        if request.logprobs is not None and not 0 <= request.logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidRequestError(
                "top_logprobs", f"{request.logprobs} is out of range; allowed 0..{MAX_TOP_LOGPROBS}"
            )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Yield chunks as tokens are generated; the last one has ``finish_reason`` and the token counts.

        Leaving the iteration early (break, ``aclose()``, task cancellation) frees the request's batch slot.

        Raises:
            InvalidRequestError: a request field is out of range (raised before any chunk).
            EmbeddedEngineError: the engine is not running or stopped mid-stream.
        """
        self._validate(request)
        prompt_ids = self.prompt_token_ids(request)
        scheduler = self._scheduler
        if scheduler is None:
            raise EmbeddedEngineError("embedded engine is not started")
        queue: asyncio.Queue[GenerationChunk | BaseException] = asyncio.Queue()
        seed = random.getrandbits(32) if request.seed is None else request.seed % SEED_MODULUS
        seq = Sequence(
            prompt_ids=prompt_ids,
            max_tokens=request.max_tokens,
            temperature=float(request.temperature),
            top_p=float(request.top_p),
            seed=seed,
            detokenizer=IncrementalDetokenizer(self._decode_tokenizer, prompt_ids),
            stops=StopStringMatcher(list(request.stop)),
            loop=asyncio.get_running_loop(),
            queue=queue,
            min_tokens=request.min_tokens,
            ignore_eos=request.ignore_eos,
            logprobs=request.logprobs,
        )
        scheduler.submit(seq)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            if not seq.finished:
                seq.cancelled = True
                scheduler.wake()
