"""What makes the embedded engine fast on a CPU: the torch thread count and oneDNN-packed linear layers.

Measured on a shared 2-core AMD EPYC (AVX-512 with BF16) with SmolLM2-135M (docs/benchmarks/local-engine-cpu.md):
a decode step is almost all matrix-vector products, i.e. bound by how fast the weights stream from memory. torch's
default ``F.linear`` re-reads each fp32 weight in its plain layout; oneDNN's linear with the weight reordered once
into its blocked layout (what inductor's CPU "freezing" pass does) ran the same products 1.1x (fp32, 1 row) to
2.3x (fp32, 8 rows) faster, and in bfloat16 about 2.5x faster than plain fp32 at 1 row. Two torch threads on two
shared cores were slower than one (they thrash with the event loop and other processes), so the default is one
thread per two logical CPUs.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

logger = logging.getLogger(__name__)


def default_cpu_threads() -> int:
    """Torch threads for a CPU engine: half the CPUs this process may run on (physical cores on SMT machines)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


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


def pack_linears(model: Any, dtype: torch.dtype, threads: int | None = None) -> int:
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
        setattr(parent, attr, PackedLinear(module, threads))
    return len(targets)
