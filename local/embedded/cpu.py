"""What makes the embedded engine fast on a CPU: the thread counts and oneDNN-packed linear layers.

Measured on a shared 2-core AMD EPYC (AVX-512 with BF16) with SmolLM2-135M (docs/benchmarks/local_engine_cpu.md):
a decode step is almost all matrix-vector products, i.e. bound by how fast the weights stream from memory. torch's
default ``F.linear`` re-reads each fp32 weight in its plain layout; oneDNN's linear with the weight reordered once
into its blocked layout (what inductor's CPU "freezing" pass does) ran the same products 1.1x (fp32, 1 row) to
2.3x (fp32, 8 rows) faster, and in bfloat16 about 2.5x faster than plain fp32 at 1 row. Two torch threads on two
shared cores were slower than one (they thrash with the event loop and other processes), so the default is one
thread per two logical CPUs; the linear layers alone stream faster on every CPU when the host is quiet, which
:class:`ThreadTuner` measures while serving.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

logger = logging.getLogger(__name__)


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_cpu_threads() -> int:
    """Torch threads for a CPU engine: half the CPUs this process may run on (physical cores on SMT machines)."""
    return max(1, cpu_count() // 2)


def native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX); oneDNN also runs bfloat16 on plain
    AVX-512 by converting to float32, which is slower than float32 itself. The one answer to "train or serve in
    bfloat16 by default?" (the embedded engine's ``dtype: auto``, edge training's ``train_precision: auto``)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def onednn_supports(dtype: torch.dtype) -> bool:
    """True when oneDNN can run packed linears in ``dtype`` here (bfloat16: natively or emulated on AVX-512)."""
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.float32:
        return True
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


class PackedLinear(torch.nn.Module):
    """An inference-only ``nn.Linear`` whose weight is reordered once into oneDNN's blocked layout.

    Args:
        linear: the layer to replace (its weight is copied and reordered; the original can be freed).
        threads: torch threads for this product only (None: the process setting). A decode step streams every weight
            once and one core's memory bandwidth bounds it; more threads here read faster, while the many small ops
            between the products stay on the process setting, where extra threads only add synchronisation.
    """

    def __init__(self, linear: torch.nn.Linear, threads: int | None = None) -> None:
        super().__init__()
        self.threads = threads
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach()
        # The batch-size hint only tunes the layout; any number of rows works afterwards.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, 1)
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` for any leading shape."""
        if self.threads is None:
            out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
            return out
        base = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            out = torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        finally:
            torch.set_num_threads(base)
        return out


def set_linear_threads(model: Any, threads: int | None) -> int:
    """Run every :class:`PackedLinear` of ``model`` on ``threads`` torch threads (None: the process setting).

    Returns:
        how many layers were set.
    """
    layers = [m for m in model.modules() if isinstance(m, PackedLinear)]
    for layer in layers:
        layer.threads = threads
    return len(layers)


class ThreadTuner:
    """Picks the packed linear layers' thread count from the decode steps the engine times anyway.

    One thread per two CPUs is the safe default on a shared box (a second thread that the kernel has scheduled out
    stalls every product's barrier: 2.2x slower steps beside one busy process), while on an idle or dedicated host
    every core streams the weights and a step is ~1.2x faster (docs/benchmarks/local_engine_cpu.md). Which one holds
    changes with the neighbours, so the tuner keeps measuring: every ``interval`` steps it runs ``probe_steps`` steps
    on the other choice and keeps whichever had the lower median step time at the same batch size (by ``margin``).
    A probe that loses doubles the interval (up to ``max_interval``), so a choice that keeps losing costs a few
    steps in a thousand; one that wins halves it (the host changed: look again sooner).

    Args:
        model: the module whose :class:`PackedLinear` layers the choice applies to.
        choices: the two thread counts, the first the starting one.
        probe_steps: steps timed per choice for one comparison.
        interval: steps between probes at first (and the shortest gap after probes that switched).
        max_interval: the longest gap between probes.
        margin: the relative gain a probe needs to switch.
    """

    def __init__(
        self,
        model: Any,
        choices: tuple[int, int],
        probe_steps: int = 4,
        interval: int = 16,
        max_interval: int = 1024,
        margin: float = 0.05,
    ) -> None:
        self._layers = [m for m in model.modules() if isinstance(m, PackedLinear)]
        self.choices = choices
        self.current = choices[0]
        self._probe_steps = probe_steps
        self._base_interval = interval
        self._interval = interval
        self._max_interval = max_interval
        self._margin = margin
        self._since = 0
        self._recent: list[tuple[int, float]] = []  # the current choice's last steps: (rows, seconds)
        self._probe: list[tuple[int, float]] | None = None
        self.switches = 0
        self._run_on(self.current)

    @property
    def probing(self) -> bool:
        """Whether the steps now run on the other choice, being measured."""
        return self._probe is not None

    def observe(self, rows: int, seconds: float) -> None:
        """Record one decode step (``rows`` sequences, ``seconds`` of wall time) and start or end a probe."""
        if self._probe is None:
            self._recent = [*self._recent[-(self._probe_steps - 1) :], (rows, seconds)]
            self._since += 1
            if self._since >= self._interval and len(self._recent) == self._probe_steps:
                self._probe = []
                self._run_on(self._other())
            return
        self._probe.append((rows, seconds))
        if len(self._probe) < self._probe_steps:
            return
        probe, self._probe, self._since = self._probe, None, 0
        same_rows = {r for r, _ in probe} == {r for r, _ in self._recent} and len({r for r, _ in probe}) == 1
        if same_rows and _median(probe) < _median(self._recent) * (1 - self._margin):
            self.current = self._other()
            self.switches += 1
            self._interval = max(self._base_interval, self._interval // 2)
            self._recent = probe
            logger.info("linear layers now on %d thread(s): %.1f ms per step", self.current, 1e3 * _median(probe))
        else:
            # Lost, or the batch changed size mid-probe (not comparable): back off and stay.
            if same_rows:
                self._interval = min(self._max_interval, self._interval * 2)
            self._recent = []
        self._run_on(self.current)

    def _run_on(self, threads: int) -> None:
        for layer in self._layers:
            layer.threads = threads

    def _other(self) -> int:
        return self.choices[1] if self.current == self.choices[0] else self.choices[0]


def _median(steps: list[tuple[int, float]]) -> float:
    times = sorted(s for _, s in steps)
    return times[len(times) // 2]


def pack_linears(model: Any, dtype: torch.dtype) -> int:
    """Replace every ``nn.Linear`` of ``model`` (including a tied LM head) with a :class:`PackedLinear`.

    Embeddings stay as they are (a tied head gets its own packed copy; the embedding table keeps the lookup).

    Args:
        model: a loaded causal LM on the CPU, in ``dtype``.
        dtype: the model's compute dtype.
    Returns:
        how many layers were replaced (0 when oneDNN cannot run ``dtype`` here).
    """
    if not onednn_supports(dtype):
        logger.info("oneDNN packed linears unavailable for %s on this CPU; keeping torch's linear", dtype)
        return 0
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear and module.weight.dtype == dtype and module.weight.device.type == "cpu"
    ]
    for name, module in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, PackedLinear(module))
    return len(targets)
