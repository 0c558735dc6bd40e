"""The model loop: continuous batching over a fixed set of slots, run in one background thread.

Each iteration (1) prefills waiting requests into free slots, (2) launches one decode step, and (3) turns the
tokens of the *previous* launch into text while the GPU runs the current one. Compiled (CUDA), the decode step has
static shapes (all slots, a few attention-length buckets), so it is compiled once per bucket and replayed as a CUDA
graph; finished rows keep computing harmless garbage until a new request takes the slot. Eager (CPU), a step runs
only the rows up to the highest occupied slot (admission fills the lowest free slot first) over the exact attention
length, so one request costs one row, not ``max_batch_size``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from local.embedded.api import GenerationChunk, TokenLogprob
from local.embedded.errors import EmbeddedEngineError
from local.embedded.kv_cache import ProbeCache, SlotKVCache
from local.embedded.loading import Placement, thread_tuner
from local.embedded.memory import SCRATCH_KV_ROWS
from local.embedded.sampling import choose_tokens, gumbel_noise
from local.embedded.settings import EmbeddedSettings
from local.embedded.text import IncrementalDetokenizer, StopStringMatcher

logger = logging.getLogger(__name__)

# Bytes of prefill logits materialised at once ([rows, prompt_len, vocab] float32); bounds prefill memory.
PREFILL_LOGITS_BUDGET_BYTES = 512 * 1024 * 1024
# Smallest automatic attention-length bucket.
MIN_KV_BUCKET = 64
# How long the idle loop sleeps before re-checking for stop (new requests wake it at once).
IDLE_WAIT_S = 0.5
# Recompiles allowed per bucket set; one graph per bucket plus slack.
DYNAMO_CACHE_LIMIT = 64


@dataclass(eq=False)
class Sequence:
    """One request's state, shared by the caller's event loop (cancel) and the model thread (everything else)."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    detokenizer: IncrementalDetokenizer
    stops: StopStringMatcher
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[GenerationChunk | BaseException]
    min_tokens: int = 0
    ignore_eos: bool = False
    # None: no log-probabilities; k >= 0: the chosen token's and the k most likely tokens' (OpenAI top_logprobs).
    logprobs: int | None = None
    slot: int = -1
    generated: int = 0
    next_pos: int = 0
    finished: bool = False
    cancelled: bool = False
    # Log-probabilities of tokens whose text is not emitted yet (held back by the detokenizer or a stop string).
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class _Launch:
    """Tokens produced by one prefill or decode launch, on their way to the host."""

    rows: list[tuple[int, Sequence]]  # (row in ``tokens``, sequence) for the rows that matter
    tokens: torch.Tensor
    event: torch.cuda.Event | None = None
    # (chosen token's logprob [rows], top-k logprobs [rows, k], top-k ids [rows, k]) when a row asked for them.
    logprobs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    # Filled on the host.
    host: list[int] = field(default_factory=list)


def kv_buckets(settings: EmbeddedSettings) -> list[int]:
    """Attention lengths the decode step is specialised for, ascending, the last being the full context."""
    context = settings.context_len
    if settings.kv_buckets:
        buckets = sorted({min(b, context) for b in settings.kv_buckets})
    else:
        buckets, size = [], MIN_KV_BUCKET
        while size < context:
            buckets.append(size)
            size *= 2
    if not buckets or buckets[-1] < context:
        buckets.append(context)
    return buckets


class BatchScheduler:
    """Owns the model, the KV cache and the thread that batches every request.

    Args:
        settings: engine settings.
        placement: resolved device/dtype/compile.
        model: the loaded causal LM.
        eos_ids: token ids that end a sequence.
    """

    def __init__(self, settings: EmbeddedSettings, placement: Placement, model: Any, eos_ids: frozenset[int]) -> None:
        self._settings = settings
        self._placement = placement
        self._model = model
        self._eos_ids = eos_ids
        self._device = placement.device
        self._slots_n = settings.max_batch_size
        self._context = settings.context_len
        self._buckets = kv_buckets(settings)
        # out_features: an nn.Linear head and a oneDNN-packed one (local.embedded.cpu) both have it.
        self._vocab = int(model.get_output_embeddings().out_features)
        self._keep_last = False
        self._eos_index = torch.tensor(sorted(eos_ids), dtype=torch.long, device=placement.device)
        self._cond = threading.Condition()
        self._waiting: deque[Sequence] = deque()
        self._slots: list[Sequence | None] = [None] * self._slots_n
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._ready = False
        self._failure: BaseException | None = None
        self._cache: SlotKVCache | None = None
        self._decode_fn: Callable[..., torch.Tensor] = self._decode_logits
        self._prefill_fn: Callable[..., torch.Tensor] = self._prefill_last_logits
        self._compiled = False
        self._noise_fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] = gumbel_noise
        self.compile_error: str | None = None
        self._pending: deque[_Launch] = deque()
        # Sequences in each recent decode step (for tests and benchmarks: did requests share a batch?).
        self.decode_sizes: deque[int] = deque(maxlen=4096)
        # Chunks of one processing pass, handed to each caller's event loop in one call (not one wake-up per token).
        self._outbox: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[Any], Any]]] = {}
        self._tuner = thread_tuner(settings, placement, model)

    # ---- lifecycle (called from the engine) -------------------------------------------------------------------
    def start(self) -> Future[None]:
        """Start the model thread; the future completes once the cache is built and the step is warmed up."""
        started: Future[None] = Future()
        self._thread = threading.Thread(target=self._thread_main, args=(started,), name="embedded-engine", daemon=True)
        self._thread.start()
        return started

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to end, fail every pending request and wait for the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def alive(self) -> bool:
        """True while the loop runs and accepts requests."""
        return self._ready and not self._stopping and self._thread is not None and self._thread.is_alive()

    def submit(self, seq: Sequence) -> None:
        """Queue a sequence for the next admission.

        Raises:
            EmbeddedEngineError: the loop is not running.
        """
        with self._cond:
            if not self.alive():
                raise EmbeddedEngineError(f"embedded engine is not running{self._failure_note()}")
            self._waiting.append(seq)
            self._cond.notify_all()

    def wake(self) -> None:
        """Nudge the loop (a request was cancelled) so an idle loop frees the slot promptly."""
        with self._cond:
            self._cond.notify_all()

    def slots_in_use(self) -> int:
        """Slots currently held by a request (a finished request frees its slot at once, a cancelled one at the
        loop's next iteration)."""
        return sum(1 for s in self._slots if s is not None)

    def _failure_note(self) -> str:
        return f" (model loop failed: {self._failure!r})" if self._failure else ""

    # ---- the thread --------------------------------------------------------------------------------------------
    def _thread_main(self, started: Future[None]) -> None:
        try:
            with torch.inference_mode():
                self._setup()
        except BaseException as exc:
            self._failure = exc
            started.set_exception(exc)
            return
        self._ready = True
        started.set_result(None)
        try:
            with torch.inference_mode():
                self._loop()
        except BaseException as exc:
            logger.exception("embedded engine loop failed")
            self._failure = exc
        finally:
            self._ready = False
            self._fail_all(EmbeddedEngineError(f"embedded engine stopped{self._failure_note()}"))

    def _setup(self) -> None:
        probe = ProbeCache()
        ids = torch.zeros((1, 2), dtype=torch.long, device=self._device)
        positions = torch.arange(2, device=self._device)[None]
        self._forward(ids, positions, self._causal_mask(2, 1), probe)
        assert probe.dtype is not None
        # Per-row logits_to_keep ([rows, 1] positions) exists in recent transformers; older ones slice differently.
        keep = torch.ones((1, 1), dtype=torch.long, device=self._device)
        try:
            shape = tuple(self._forward(ids, positions, self._causal_mask(2, 1), ProbeCache(), keep=keep).shape)
            self._keep_last = shape == (1, 1, self._vocab)
        except (TypeError, ValueError, RuntimeError, IndexError):
            self._keep_last = False
        # One extra cache row is scratch: a prefill batch of one prompt gets a dummy second row written there, so
        # the dynamic-shape prefill graph never meets the size-1 special case (one graph instead of several).
        rows = self._slots_n + SCRATCH_KV_ROWS
        self._scratch = self._slots_n
        self._cache = SlotKVCache(probe.layer_shapes(), rows, self._context, probe.dtype, self._device)
        dev = self._device
        self._tokens = torch.zeros(rows, dtype=torch.long, device=dev)
        self._positions = torch.zeros(rows, dtype=torch.long, device=dev)
        self._steps = torch.zeros(rows, dtype=torch.long, device=dev)
        self._seeds = torch.zeros(rows, dtype=torch.long, device=dev)
        self._temps = torch.zeros(rows, dtype=torch.float32, device=dev)
        self._top_ps = torch.ones(rows, dtype=torch.float32, device=dev)
        if dev.type == "cuda":
            for t in (self._tokens, self._positions, self._steps, self._seeds, self._temps, self._top_ps):
                torch._dynamo.mark_static_address(t)
        self._use_eager()
        if self._placement.compile:
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, DYNAMO_CACHE_LIMIT)
            # Decode: static shapes, one CUDA graph per attention bucket. Prefill: one dynamic-shape graph (no
            # CUDA graph) that removes the Python overhead of the eager forward, whatever the prompt batch.
            self._decode_fn = torch.compile(self._decode_logits, mode="reduce-overhead", dynamic=False)
            self._prefill_fn = torch.compile(self._prefill_last_logits, dynamic=True)
            self._compiled = True
            self._noise_fn = self._compiled_noise()
            try:
                self._warmup()
                return
            except Exception as exc:  # a torch/inductor build that cannot compile this model still serves, eagerly
                logger.warning("torch.compile of the model step failed, serving eager: %r", exc)
                self.compile_error = repr(exc)
                torch._dynamo.reset()
                self._use_eager()
        self._warmup()

    def _compiled_noise(self) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
        # The hash noise is ~15 elementwise int64 ops over [slots, vocab]: fused, it is one kernel instead of 15.
        compiled = torch.compile(gumbel_noise, dynamic=False)
        # The real buffers, so the graph compiled here is the one decode uses (dynamo guards on tensor aliasing).
        seeds, steps = self._seeds, self._steps
        try:
            if not torch.equal(compiled(seeds, steps, self._vocab), gumbel_noise(seeds, steps, self._vocab)):
                raise RuntimeError("compiled noise differs from eager noise")
        except Exception as exc:
            logger.warning("compiling the sampling noise failed, keeping it eager: %r", exc)
            return gumbel_noise
        return compiled

    def _use_eager(self) -> None:
        self._decode_fn = self._decode_logits
        self._prefill_fn = self._prefill_last_logits
        self._noise_fn = gumbel_noise
        self._compiled = False

    @property
    def compiled(self) -> bool:
        """Whether the decode and prefill steps run compiled."""
        return self._compiled

    def _warmup(self) -> None:
        # A prefill and a decode per bucket: compiles/captures every graph before the first real request, so no
        # request ever stalls the batch for a compile. Rows written here are free and get overwritten on admission.
        # The first compile must not see a width equal to a model dimension (head count, head size), or dynamo's
        # duck sizing ties the two and recompiles for every other width: 13 and 88 are unlikely dimensions. Inductor
        # also specialises on widths divisible by 8 or not, so both kinds are warmed up.
        for n, width in ((2, 13), (3, 88), (2, 11)):
            width = max(2, min(width, self._context))
            rows = torch.arange(min(n, self._slots_n), device=self._device)
            ids = torch.zeros((len(rows), width), dtype=torch.long, device=self._device)
            self._prefill_logits(ids, rows, [width] * len(rows))
            if not self._compiled:
                break
        repeats = 3 if self._compiled else 1
        for bucket in self._buckets:
            self._positions.fill_(bucket - 1)
            for _ in range(repeats):
                self._run_decode(bucket, "top_p")
        self._positions.zero_()
        self._sync()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._drop_cancelled()
                if not self._pending and not self._waiting and self.slots_in_use() == 0:
                    self._cond.wait(IDLE_WAIT_S)
                    continue
                admit = self._take_admissions()
            if admit:
                self._launch_prefill(admit)
            active = [s for s in self._slots if s is not None and not s.finished and not s.cancelled]
            if active:
                self._launch_decode(active)
            # Keep the newest launch in flight (the GPU works on it) and process the older ones.
            keep = 1 if active else 0
            while len(self._pending) > keep:
                self._process(self._pending.popleft())
            self._flush_outbox()

    # ---- admission and prefill ---------------------------------------------------------------------------------
    def _drop_cancelled(self) -> None:
        for i, seq in enumerate(self._slots):
            if seq is not None and (seq.cancelled or seq.finished):
                self._slots[i] = None
        if any(s.cancelled for s in self._waiting):
            self._waiting = deque(s for s in self._waiting if not s.cancelled)

    def _take_admissions(self) -> list[Sequence]:
        free = [i for i, s in enumerate(self._slots) if s is None]
        admitted: list[Sequence] = []
        budget = self._settings.max_prefill_tokens
        while self._waiting and free:
            seq = self._waiting[0]
            if admitted and len(seq.prompt_ids) > budget:
                break
            self._waiting.popleft()
            budget -= len(seq.prompt_ids)
            seq.slot = free.pop(0)
            self._slots[seq.slot] = seq
            admitted.append(seq)
        return admitted

    def _launch_prefill(self, seqs: list[Sequence]) -> None:
        dev = self._device
        lengths = [len(s.prompt_ids) for s in seqs]
        width = max(lengths)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, seq in enumerate(seqs):
            ids[i, : lengths[i]] = torch.tensor(seq.prompt_ids, dtype=torch.long)
        rows = torch.tensor([s.slot for s in seqs], dtype=torch.long, device=dev)
        logits = self._prefill_logits(ids.to(dev), rows, lengths)
        temps = torch.tensor([s.temperature for s in seqs], dtype=torch.float32, device=dev)
        top_ps = torch.tensor([s.top_p for s in seqs], dtype=torch.float32, device=dev)
        seeds = torch.tensor([s.seed for s in seqs], dtype=torch.long, device=dev)
        steps = torch.zeros(len(seqs), dtype=torch.long, device=dev)
        sampling = any(s.temperature > 0 for s in seqs)
        raw = logits
        logits = self._block_eos(logits, seqs)
        first = (
            choose_tokens(logits, temps, top_ps, seeds, steps, apply_top_p=any(s.top_p < 1 for s in seqs))
            if sampling
            else torch.argmax(logits, dim=-1)
        )
        self._tokens.index_copy_(0, rows, first)
        self._positions.index_copy_(0, rows, torch.tensor(lengths, dtype=torch.long, device=dev))
        self._steps.index_fill_(0, rows, 1)
        self._temps.index_copy_(0, rows, temps)
        self._top_ps.index_copy_(0, rows, top_ps)
        self._seeds.index_copy_(0, rows, seeds)
        for seq, length in zip(seqs, lengths, strict=True):
            seq.next_pos = length
        self._pending.append(self._to_host(first, list(enumerate(seqs)), self._logprobs(raw, first, seqs)))

    def _prefill_logits(self, ids: torch.Tensor, rows: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """Run right-padded prompts through the model, write their KV rows, return each prompt's last logits."""
        n, width = ids.shape
        if self._compiled and width < 2:
            ids = torch.cat([ids, torch.zeros_like(ids)], dim=1)
            width = 2
        chunk = max(2, PREFILL_LOGITS_BUDGET_BYTES // max(1, width * self._vocab * 4))
        last = torch.tensor(lengths, dtype=torch.long, device=self._device) - 1
        out = []
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            sub_ids, sub_rows, sub_last = ids[start:stop], rows[start:stop], last[start:stop]
            if self._compiled and stop - start < 2:
                scratch = torch.tensor([self._scratch], dtype=torch.long, device=self._device)
                sub_ids = torch.cat([sub_ids, sub_ids[:1]])
                sub_rows = torch.cat([sub_rows, scratch])
                sub_last = torch.cat([sub_last, sub_last[:1]])
            out.append(self._prefill_fn(sub_ids, sub_rows, sub_last)[: stop - start])
        return torch.cat(out) if len(out) > 1 else out[0]

    def _prefill_last_logits(self, ids: torch.Tensor, rows: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        assert self._cache is not None
        n, width = ids.shape
        self._cache.set_prefill(rows)
        positions = torch.arange(width, device=ids.device)[None].expand(n, -1)
        # Only each prompt's last position goes through the LM head (a [rows, 1, vocab] product, not [rows, width,
        # vocab]); a model that ignores logits_to_keep returns every position and is indexed here instead.
        if self._keep_last:
            return self._forward(ids, positions, self._causal_mask(width, n), self._cache, keep=last[:, None])[:, 0]
        logits = self._forward(ids, positions, self._causal_mask(width, n), self._cache)
        return logits[torch.arange(n, device=ids.device), last]

    # ---- decode ------------------------------------------------------------------------------------------------
    def _launch_decode(self, active: list[Sequence]) -> None:
        kv_len = self._bucket(max(s.next_pos for s in active) + 1)
        # Compiled steps have static shapes (every row of the buffers, the same tensors each time, so the CUDA
        # graphs read them in place); eager ones compute only up to the highest occupied slot.
        rows = None if self._compiled else max(s.slot for s in active) + 1
        by_row: list[Sequence | None] = [None] * (len(self._tokens) if rows is None else rows)
        for seq in active:
            by_row[seq.slot] = seq
        started = time.perf_counter()
        out, raw = self._run_decode(kv_len, self._sampling_mode(active), rows, by_row)
        if self._tuner is not None:  # CPU only: the step above ran synchronously, so this is its time
            self._tuner.observe(len(active), time.perf_counter() - started)
        self.decode_sizes.append(len(active))
        for seq in active:
            seq.next_pos += 1
        self._pending.append(self._to_host(out, [(s.slot, s) for s in active], self._logprobs(raw, out, by_row)))

    def _run_decode(
        self,
        kv_len: int,
        sampling: Literal["greedy", "sample", "top_p"],
        rows: int | None = None,
        by_row: list[Sequence | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decode step over slots ``[0, rows)`` (None: every row); returns the chosen tokens and raw logits."""
        assert self._cache is not None
        buffers = (self._tokens, self._positions, self._temps, self._top_ps, self._seeds, self._steps)
        tokens, positions, temps, top_ps, seeds, steps = buffers if rows is None else (b[:rows] for b in buffers)
        self._cache.set_decode(positions, kv_len)
        if self._compiled:
            torch.compiler.cudagraph_mark_step_begin()
        raw = self._decode_fn(tokens, positions, kv_len)
        logits = raw if by_row is None else self._block_eos(raw, by_row)
        # Sampling stays eager: it is a few kernels, and inductor cannot compile its cumsum on every build.
        if sampling == "greedy":
            out = torch.argmax(logits, dim=-1)
        else:
            out = choose_tokens(
                logits, temps, top_ps, seeds, steps, apply_top_p=sampling == "top_p", noise_fn=self._noise_fn
            )
        tokens.copy_(out)
        positions.add_(1).clamp_(max=self._context - 1)
        steps.add_(1)
        return tokens.clone(), raw

    def _block_eos(self, logits: torch.Tensor, by_row: list[Sequence] | list[Sequence | None]) -> torch.Tensor:
        """Logits with the end-of-sequence tokens ruled out for rows that have not reached their ``min_tokens``."""
        block = [s is not None and s.generated < s.min_tokens for s in by_row]
        if not any(block) or not len(self._eos_index):
            return logits
        mask = torch.tensor(block, dtype=torch.bool, device=logits.device)[:, None]
        blocked = logits.index_fill(1, self._eos_index, float("-inf"))
        return torch.where(mask, blocked, logits)

    def _logprobs(
        self, raw: torch.Tensor, chosen: torch.Tensor, by_row: list[Sequence] | list[Sequence | None]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The chosen tokens' log-probabilities under the model (before temperature) and the top-k, if asked."""
        wanted = [s.logprobs for s in by_row if s is not None and s.logprobs is not None]
        if not wanted:
            return None
        logp = torch.log_softmax(raw.float(), dim=-1)
        top_values, top_ids = torch.topk(logp, max(1, max(wanted)), dim=-1)
        return logp.gather(1, chosen[:, None])[:, 0], top_values, top_ids

    def _decode_logits(self, tokens: torch.Tensor, positions: torch.Tensor, kv_len: int) -> torch.Tensor:
        assert self._cache is not None
        dtype = self._cache.keys[0].dtype
        visible = torch.arange(kv_len, device=tokens.device)[None, :] <= positions[:, None]
        zero = torch.zeros((), dtype=dtype, device=tokens.device)
        mask = torch.where(visible, zero, torch.finfo(dtype).min)[:, None, None, :]
        return self._forward(tokens[:, None], positions[:, None], mask, self._cache)[:, -1]

    def _sampling_mode(self, active: list[Sequence]) -> Literal["greedy", "sample", "top_p"]:
        if all(s.temperature == 0 for s in active):
            return "greedy"
        return "top_p" if any(s.top_p < 1 and s.temperature > 0 for s in active) else "sample"

    def _bucket(self, needed: int) -> int:
        if not self._compiled:  # eager attention takes any length: attend over exactly what is written
            return min(needed, self._context)
        for bucket in self._buckets:
            if bucket >= needed:
                return bucket
        return self._buckets[-1]

    # ---- model call helpers ------------------------------------------------------------------------------------
    def _forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        cache: Any,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[rows, width, vocab]`` of a forward pass that reads and writes ``cache``.

        ``keep`` (``[rows, k]`` positions) asks for the logits of those positions only (``[rows, k, vocab]``).
        """
        extra: dict[str, Any] = {} if keep is None else {"logits_to_keep": keep}
        out = self._model(
            input_ids=ids, position_ids=positions, attention_mask=mask, past_key_values=cache, use_cache=True, **extra
        )
        logits: torch.Tensor = out.logits
        return logits

    def _causal_mask(self, width: int, rows: int) -> torch.Tensor:
        dtype = self._placement.dtype if not self._placement.load_in_4bit else torch.bfloat16
        if self._cache is not None:
            dtype = self._cache.keys[0].dtype
        allowed = torch.ones(width, width, dtype=torch.bool, device=self._device).tril()
        mask = torch.zeros(width, width, dtype=dtype, device=self._device).masked_fill(~allowed, torch.finfo(dtype).min)
        return mask[None, None].expand(rows, 1, width, width)

    def _to_host(
        self,
        tokens: torch.Tensor,
        rows: list[tuple[int, Sequence]],
        logprobs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> _Launch:
        if tokens.device.type != "cuda":
            return _Launch(rows=rows, tokens=tokens, logprobs=logprobs)
        host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
        host.copy_(tokens, non_blocking=True)
        if logprobs is not None:  # rare: a plain copy is fine
            logprobs = (logprobs[0].cpu(), logprobs[1].cpu(), logprobs[2].cpu())
        event = torch.cuda.Event()
        event.record()
        return _Launch(rows=rows, tokens=host, event=event, logprobs=logprobs)

    def _sync(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    # ---- turning tokens into chunks ----------------------------------------------------------------------------
    def _process(self, launch: _Launch) -> None:
        if launch.event is not None:
            launch.event.synchronize()
        values = launch.tokens.tolist()
        for row, seq in launch.rows:
            if seq.finished or seq.cancelled:
                continue
            if seq.logprobs is not None and launch.logprobs is not None:
                seq.pending_logprobs.append(self._token_logprob(seq, row, int(values[row]), launch.logprobs))
            self._advance(seq, int(values[row]))

    @staticmethod
    def _token_logprob(
        seq: Sequence, row: int, token: int, logprobs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> TokenLogprob:
        chosen, top_values, top_ids = logprobs
        k = seq.logprobs or 0
        text = seq.detokenizer.token_text
        top = tuple(
            (text(int(i)), float(v))
            for i, v in zip(top_ids[row, :k].tolist(), top_values[row, :k].tolist(), strict=True)
        )
        return TokenLogprob(token=text(token), logprob=float(chosen[row]), top=top)

    def _advance(self, seq: Sequence, token: int) -> None:
        seq.generated += 1
        if token in self._eos_ids and not seq.ignore_eos:
            text, stopped = seq.stops.feed(seq.detokenizer.flush())
            self._finish(seq, text + ("" if stopped else seq.stops.flush()), "stop")
            return
        text, stopped = seq.stops.feed(seq.detokenizer.push(token))
        if stopped:
            self._finish(seq, text, "stop")
        elif seq.generated >= seq.max_tokens:
            tail, stopped = seq.stops.feed(seq.detokenizer.flush())
            text += tail
            self._finish(seq, text + ("" if stopped else seq.stops.flush()), "stop" if stopped else "length")
        elif text:
            self._emit(seq, GenerationChunk(text=text))

    def _finish(self, seq: Sequence, text: str, reason: Literal["stop", "length"]) -> None:
        seq.finished = True
        if self._slots[seq.slot] is seq:
            self._slots[seq.slot] = None
        chunk = GenerationChunk(
            text=text, finish_reason=reason, prompt_tokens=len(seq.prompt_ids), completion_tokens=seq.generated
        )
        self._emit(seq, chunk)

    def _emit(self, seq: Sequence, item: GenerationChunk | BaseException) -> None:
        if isinstance(item, GenerationChunk) and seq.pending_logprobs:
            item = dataclasses.replace(item, logprobs=tuple(seq.pending_logprobs))
            seq.pending_logprobs = []
        self._outbox.setdefault(seq.loop, []).append((seq.queue, item))

    def _flush_outbox(self) -> None:
        outbox, self._outbox = self._outbox, {}
        for loop, items in outbox.items():
            # A closed loop raises RuntimeError: that caller is gone and nobody listens any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_put_all, items)

    def _fail_all(self, error: BaseException) -> None:
        with self._cond:
            seqs = [s for s in self._slots if s is not None] + list(self._waiting)
            self._slots = [None] * self._slots_n
            self._waiting.clear()
        for seq in seqs:
            if not seq.finished:
                seq.finished = True
                self._emit(seq, error)
        self._flush_outbox()


def _put_all(items: list[tuple[asyncio.Queue[Any], Any]]) -> None:
    for queue, item in items:
        queue.put_nowait(item)
