"""Typed settings of the embedded engine, read once by whoever builds the engine (the gateway or a benchmark)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Upper bounds that catch typos (a batch of 100000 slots would allocate the KV cache of 100000 sequences).
MAX_BATCH_SIZE_CEILING = 1024
MAX_CONTEXT_CEILING = 131_072


class EmbeddedSettings(BaseModel):
    """How to load and serve one local model directory.

    The KV cache holds ``max_batch_size`` sequences of ``max_input_tokens + max_new_tokens_limit`` tokens each; it is
    allocated once at start-up, so these three numbers bound the engine's memory.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    model_dir: Path = Field(description="directory with config.json, weights and tokenizer files")
    model_name: str | None = Field(default=None, description="name served to clients; default: the directory name")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto picks cuda when available")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="auto: bfloat16 on cuda (float16 if unsupported); on cpu bfloat16 where oneDNN runs it natively "
        "(AVX-512 BF16 / AMX), else float32",
    )
    cpu_threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="torch threads on cpu; default: half the CPUs this process may use (one on a 2-core box)",
    )
    cpu_linear_threads: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = Field(
        default="auto",
        description="cpu: torch threads for the (oneDNN-packed) linear layers only. auto: start on cpu_threads and "
        "keep measuring decode steps against every CPU this process may use, keeping the faster (a second core "
        "streams the weights faster on an idle host and stalls on a busy one; docs/benchmarks/local_engine_cpu.md)",
    )
    cpu_onednn: bool = Field(
        default=True, description="cpu: run linear layers through oneDNN with weights packed once at load"
    )
    cpu_fused: bool = Field(
        default=True,
        description="cpu: run Llama-family models (Llama, Mistral, Qwen2) through the engine's fused forward (q|k|v "
        "and gate|up as one product each; checked against transformers' at load); off: transformers' modules",
    )
    max_batch_size: int = Field(default=8, ge=1, le=MAX_BATCH_SIZE_CEILING, description="concurrent sequences")
    max_new_tokens_limit: int = Field(default=512, ge=1, le=MAX_CONTEXT_CEILING, description="cap on max_tokens")
    max_input_tokens: int = Field(default=1024, ge=1, le=MAX_CONTEXT_CEILING, description="longest prompt accepted")
    max_prefill_tokens: int = Field(
        default=4096, ge=1, description="prompt tokens prefilled in one step; bounds the stall of running streams"
    )
    load_in_4bit: bool = Field(default=False, description="bitsandbytes NF4 weights with bfloat16 compute (cuda only)")
    compile: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="torch.compile the decode step (CUDA graphs); auto: on for cuda unless 4-bit (on with 4-bit is "
        "tried, and a failed compile falls back to eager with the reason logged)",
    )
    kv_buckets: tuple[int, ...] | None = Field(
        default=None,
        description="attention lengths the decode step is specialised for; default: powers of two up to the context",
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "slot"] = Field(
        default="auto",
        description="slot: grouped-KV decode attention (no repeated KV heads); auto: slot on cuda, sdpa elsewhere",
    )

    @field_validator("kv_buckets")
    @classmethod
    def _buckets_positive(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or any(b < 1 for b in value)):
            raise ValueError("kv_buckets: expected a non-empty list of positive token counts")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EmbeddedSettings:
        if self.load_in_4bit and self.device == "cpu":
            raise ValueError("load_in_4bit: bitsandbytes 4-bit needs device cuda (or auto on a GPU host), not cpu")
        if self.load_in_4bit and self.dtype not in ("auto", "bfloat16"):
            raise ValueError("dtype: with load_in_4bit the compute dtype is bfloat16; use 'auto' or 'bfloat16'")
        return self

    @property
    def context_len(self) -> int:
        """Tokens one KV-cache slot holds: the longest prompt plus the most new tokens."""
        return self.max_input_tokens + self.max_new_tokens_limit
