"""Does a model fit an instance? Weights at the chosen dtype/quantization, plus the KV cache the engine holds, plus the
runtime's overhead (:class:`Footprint`), against the memory the engine may use. The per-scheme byte rates and the
overhead are measured on a GPU (docs/BENCHMARKS.md, "4-bit on the GPU"), and a test pins the estimate to within 15% of
that run's peak memory (tests/config/test_sizing_measured.py).

The two endpoint engines use GPUs differently, and the check follows that:
- ``handler`` (our ``inference.py`` on the PyTorch DLC) loads one model copy per GPU: it needs the model to fit one GPU.
- ``lmi`` (DJL serving + vLLM) shards the model over ``tensor_parallel_degree`` GPUs (tensor parallel): the model must
  fit that many GPUs together, at vLLM's ``gpu_memory_utilization``.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.instances import InstanceTable, InstanceType
from local.embedded.memory import GIB, Architecture, Footprint

__all__ = ["GIB", "Architecture", "Footprint", "Placement", "fits", "suggest_instances", "suggest_precisions"]

# The serving engine may use this share of GPU memory (vLLM's --gpu-memory-utilization default).
GPU_MEMORY_UTILIZATION = 0.9
# On CPU instances the weights (fp32) share host memory with the OS and the server.
CPU_MEMORY_UTILIZATION = 0.7


@dataclass(frozen=True)
class Placement:
    """How an engine places one model copy: on ``gpus`` GPUs (0 on a CPU instance) at ``utilization``."""

    gpus: int
    utilization: float = GPU_MEMORY_UTILIZATION

    def describe(self, instance: InstanceType) -> str:
        if not instance.gpus:
            return f"{instance.memory_gib:g} GiB host memory"
        used = f"{self.gpus} of its " if self.gpus != instance.gpus else ""
        return f"{used}{instance.gpus} x {instance.gpu_memory_gib:g} GiB GPU{'s' if used and instance.gpus > 1 else ''}"


def usable_gib(instance: InstanceType, placement: Placement | None = None) -> float:
    """Memory one model copy may use: the placement's GPUs (all GPUs when None) or the host's memory."""
    if instance.gpus:
        p = placement or Placement(instance.gpus)
        return p.gpus * instance.gpu_memory_gib * p.utilization
    return instance.memory_gib * CPU_MEMORY_UTILIZATION


def fits(instance: InstanceType, need: Footprint, placement: Placement | None = None) -> bool:
    return need.total_gib <= usable_gib(instance, placement)


def suggest_instances(
    table: InstanceTable, current: InstanceType, need_gib: float, *, per_gpu: bool = False, limit: int = 2
) -> list[str]:
    """Cheapest instances that fit, same family first (``ml.g5.2xlarge`` -> ``ml.g5.12xlarge``).

    Args:
        per_gpu: the model must fit one GPU (the handler engine); otherwise all the instance's GPUs together.
    """

    def room(i: InstanceType) -> float:
        return usable_gib(i, Placement(1) if per_gpu and i.gpus else None)

    candidates = [
        i
        for i in table.instances.values()
        if (i.gpus > 0) == (current.gpus > 0) and room(i) >= need_gib and i.name != current.name
    ]
    candidates.sort(key=lambda i: (i.family != current.family, i.usd_per_hour))
    return [i.name for i in candidates[:limit]]


# Lower precisions to suggest, as (label, model.quantization); vLLM (the lmi engine) serves these.
SMALLER_PRECISIONS = (("8-bit", "fp8"), ("4-bit", "awq"))


def suggest_precisions(instance: InstanceType, need: Footprint, placement: Placement | None = None) -> list[str]:
    """Lower precisions (as config values) at which the model would fit this instance."""
    return [
        f"{label} quantization (model.quantization: {quant})"
        for label, quant in SMALLER_PRECISIONS
        if fits(instance, need.with_quantization(quant), placement)
    ]
