"""How much memory one model copy needs: weights at a dtype or quantization scheme, the KV cache an engine holds, and
the runtime's overhead. Standard library only: the deployment config's instance check (``config/sizing.py``) and the
generation core's pre-load check (``local/embedded/loading.py``, also inside the SageMaker handler) share it.

The byte rates and the overhead were checked on a GPU: docs/BENCHMARKS.md, "4-bit on the GPU", and
``tests/data/gpu_4bit_h200.json``, which ``tests/config/test_sizing_measured.py`` holds the estimate to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GIB = 1024**3
# The generation core's KV cache has one row beyond its batch slots: scratch for the dummy second row of a one-prompt
# prefill (local/embedded/scheduler.py), so it holds (max_batch_size + SCRATCH_KV_ROWS) full contexts.
SCRATCH_KV_ROWS = 1


def core_kv_tokens(max_batch_size: int, context_len: int) -> int:
    """KV-cache tokens the generation core allocates up front for these settings (scratch row included)."""
    return (max_batch_size + SCRATCH_KV_ROWS) * context_len


# Bytes per parameter for the weights at each precision.
BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}
# Quantization schemes: bytes per parameter of the quantized linear layers (embeddings, the LM head and norms stay at
# the model's dtype). bitsandbytes NF4: 4-bit codes plus one fp32 absmax per 64-weight block (its defaults, no double
# quantization). Checked on an H200 (docs/BENCHMARKS.md, "4-bit on the GPU"; tests/data/gpu_4bit_h200.json): a
# 7B-shaped Llama held 3.93 GiB of NF4 weights, this formula says 3.88. AWQ/GPTQ: 4-bit codes plus an fp16 scale and
# a packed zero point per 128-weight group.
QUANT_BYTES_PER_LINEAR_PARAM: dict[str, float] = {
    "awq": 0.5 + 2.5 / 128,
    "gptq": 0.5 + 2.5 / 128,
    "bnb-4bit": 0.5 + 4 / 64,
    "bnb-8bit": 1.0 + 4 / 4096,
    "fp8": 1.0,
}
# What an engine holds beyond weights and KV cache at its peak (CUDA workspaces, prefill activations, logits, the
# sampler). Measured on the H200 at batch 64 with a 7B shape: 0.50 GiB (bf16) and 0.55 GiB (NF4) allocated.
RUNTIME_OVERHEAD_GIB = 0.6
# Families whose MLP is a plain up/down pair; every other family is counted as gated (gate, up, down: Llama style).
UNGATED_MLP = ("gpt2", "gpt_neox", "gptj", "opt", "bloom", "gpt_bigcode", "falcon", "phi")


@dataclass(frozen=True)
class Architecture:
    """The shapes that decide a decoder's memory: weights per layer, the embedding tables and the KV cache."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool = False
    gated_mlp: bool = True
    estimated: bool = False
    total_params: int | None = None  # an estimated shape keeps the stated parameter count for its weights

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def linear_params(self) -> int:
        """Parameters in the layers' linear projections (what 4-bit/8-bit schemes quantize)."""
        if self.total_params is not None:
            return max(0, self.total_params - self.embedding_params)
        kv = self.kv_heads * self.head_dim
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * kv
        mlp = (3 if self.gated_mlp else 2) * self.hidden * self.intermediate
        return self.layers * (attention + mlp)

    @property
    def embedding_params(self) -> int:
        """Token embeddings plus the LM head (one table when tied); they stay at the model's dtype."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    def kv_bytes_per_token(self, dtype_bytes: float = 2.0) -> float:
        """Keys and values of every layer for one token."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes

    @classmethod
    def from_hf_config(cls, cfg: Mapping[str, Any]) -> Architecture:
        """From a model's ``config.json`` (Llama, Qwen, Mistral, GPT-2 and friends' key names).

        Raises:
            ValueError: a shape the config does not give.
        """

        def first(*keys: str, default: Any = None) -> Any:
            for key in keys:
                if isinstance(cfg.get(key), int):
                    return cfg[key]
            if default is None:
                raise ValueError(f"config.json: none of {', '.join(keys)} is an integer")
            return default

        hidden = first("hidden_size", "n_embd", "d_model")
        heads = first("num_attention_heads", "n_head")
        return cls(
            layers=first("num_hidden_layers", "n_layer", "num_layers"),
            hidden=hidden,
            intermediate=first("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden),
            heads=heads,
            kv_heads=first("num_key_value_heads", default=heads),
            vocab=first("vocab_size"),
            tied_embeddings=bool(cfg.get("tie_word_embeddings", cfg.get("model_type") == "gpt2")),
            gated_mlp=cfg.get("model_type") not in UNGATED_MLP,
        )

    @classmethod
    def llama_like(cls, params_billions: float) -> Architecture:
        """A Llama-2-shaped estimate from the parameter count alone: full multi-head attention, 128 hidden units per
        layer of depth, a 32k vocabulary. Models with grouped-query attention need less KV cache than this says."""
        target = params_billions * 1e9
        hidden = 256
        while True:
            arch = cls._llama(hidden)
            if arch.linear_params + arch.embedding_params >= target or hidden >= 65536:
                return dataclasses.replace(arch, total_params=int(target))
            hidden += 128

    @classmethod
    def _llama(cls, hidden: int) -> Architecture:
        return cls(
            layers=max(1, hidden // 128),
            hidden=hidden,
            intermediate=int(hidden * 8 / 3 / 256 + 1) * 256,
            heads=max(1, hidden // 128),
            kv_heads=max(1, hidden // 128),
            vocab=32000,
            estimated=True,
        )


@dataclass(frozen=True)
class Footprint:
    """What one model copy needs in memory: its weights, the KV cache the engine holds, and the runtime's overhead.

    ``kv_tokens`` is the KV cache the engine allocates for this copy: the embedded core (and the SageMaker handler)
    holds ``max_batch_size x (max_input_tokens + max_new_tokens)`` tokens up front; vLLM needs at least one
    ``max_model_len`` sequence and fills whatever else is free.
    """

    arch: Architecture
    dtype: str
    quantization: str
    kv_tokens: int

    @property
    def weights_bytes(self) -> float:
        a, dtype_bytes = self.arch, BYTES_PER_PARAM[self.dtype]
        if self.quantization == "none":
            return (a.linear_params + a.embedding_params) * dtype_bytes
        # the unquantized tables sit at 16 bits (a quantized model's dtype is its compute dtype)
        other = a.embedding_params * min(dtype_bytes, 2.0)
        return a.linear_params * QUANT_BYTES_PER_LINEAR_PARAM[self.quantization] + other

    @property
    def weights_gib(self) -> float:
        return self.weights_bytes / GIB

    @property
    def kv_gib(self) -> float:
        kv_dtype = 4.0 if self.dtype == "fp32" and self.quantization == "none" else 2.0  # fp8/int weights: 16-bit KV
        return self.kv_tokens * self.arch.kv_bytes_per_token(kv_dtype) / GIB

    @property
    def total_gib(self) -> float:
        """Weights + KV cache + the runtime's measured overhead."""
        return self.weights_gib + self.kv_gib + RUNTIME_OVERHEAD_GIB

    def describe(self) -> str:
        shape = " (a Llama-like shape estimated from the parameter count)" if self.arch.estimated else ""
        return (
            f"{self.weights_gib:.1f} GiB weights + {self.kv_gib:.1f} GiB KV cache for {self.kv_tokens} tokens{shape} "
            f"+ {RUNTIME_OVERHEAD_GIB:g} GiB runtime"
        )

    def with_quantization(self, quantization: str) -> Footprint:
        return Footprint(self.arch, self.dtype, quantization, self.kv_tokens)
