"""Does a model fit an instance? Weight bytes at the chosen dtype/quantization vs the instance's memory."""

from __future__ import annotations

from config.instances import InstanceTable, InstanceType

# Bytes per parameter for the weights at each precision.
BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}
# Quantization schemes override the dtype's weight size.
QUANT_BYTES_PER_PARAM: dict[str, float] = {
    "awq": 0.5,
    "gptq": 0.5,
    "bnb-4bit": 0.5,
    "bnb-8bit": 1.0,
    "fp8": 1.0,
}
# The serving engine may use this share of GPU memory (vLLM's --gpu-memory-utilization default).
GPU_MEMORY_UTILIZATION = 0.9
# Weights must leave at least this share of themselves free again for the KV cache and activations.
KV_CACHE_HEADROOM = 0.2
# On CPU instances the weights (fp32) share host memory with the OS and the server.
CPU_MEMORY_UTILIZATION = 0.7
GIB = 1024**3


def bytes_per_param(dtype: str, quantization: str) -> float:
    if quantization != "none":
        return QUANT_BYTES_PER_PARAM[quantization]
    return BYTES_PER_PARAM[dtype]


def weights_gib(params_billions: float, dtype: str, quantization: str) -> float:
    return params_billions * 1e9 * bytes_per_param(dtype, quantization) / GIB


def required_gib(params_billions: float, dtype: str, quantization: str) -> float:
    """Memory the model needs: weights plus KV-cache/activation headroom."""
    return weights_gib(params_billions, dtype, quantization) * (1 + KV_CACHE_HEADROOM)


def usable_gib(instance: InstanceType) -> float:
    if instance.gpus:
        return instance.total_gpu_memory_gib * GPU_MEMORY_UTILIZATION
    return instance.memory_gib * CPU_MEMORY_UTILIZATION


def fits(instance: InstanceType, params_billions: float, dtype: str, quantization: str) -> bool:
    return required_gib(params_billions, dtype, quantization) <= usable_gib(instance)


def suggest_instances(table: InstanceTable, current: InstanceType, need_gib: float, limit: int = 2) -> list[str]:
    """Cheapest instances that fit, same family first (``ml.g5.2xlarge`` -> ``ml.g5.12xlarge``)."""
    candidates = [
        i for i in table.instances.values() if (i.gpus > 0) == (current.gpus > 0) and usable_gib(i) >= need_gib
    ]
    candidates.sort(key=lambda i: (i.family != current.family, i.usd_per_hour))
    return [i.name for i in candidates[:limit]]


def suggest_precisions(instance: InstanceType, params_billions: float, dtype: str) -> list[str]:
    """Lower precisions (as config values) at which the model would fit this instance."""
    options = [("int8", "bnb-8bit"), ("int4", "awq")]
    out: list[str] = []
    for label, quant in options:
        if fits(instance, params_billions, dtype, quant):
            out.append(f"{label} quantization (model.quantization: {quant})")
    return out
