"""Resolving device/dtype from settings and loading the model and tokenizer from a local directory."""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from local.embedded.attention import use_slot_attention
from local.embedded.cpu import (
    ThreadTuner,
    cpu_count,
    default_cpu_threads,
    native_bf16,
    onednn_supports,
    pack_linears,
    set_linear_threads,
)
from local.embedded.errors import EngineSetupError
from local.embedded.fused import FusedDecoder, fuse_for_cpu
from local.embedded.memory import GIB, Architecture, Footprint, core_kv_tokens
from local.embedded.settings import EmbeddedSettings

logger = logging.getLogger(__name__)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Placement:
    """Where and how the model runs, resolved once from the settings and the machine."""

    device: torch.device
    dtype: torch.dtype
    compile: bool
    load_in_4bit: bool


def auto_dtype(device: torch.device) -> torch.dtype:
    """The dtype ``auto`` means: bfloat16 on a GPU (float16 when it has no bfloat16); on a CPU, bfloat16 where oneDNN
    runs it natively (AVX-512 BF16 or AMX: half the weight bytes per token, see local.embedded.cpu), else float32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if native_bf16() and onednn_supports(torch.bfloat16) else torch.float32


def resolve_placement(settings: EmbeddedSettings) -> Placement:
    """Check the settings against this machine and pick device, dtype and whether to compile.

    Args:
        settings: the engine settings.
    Returns:
        the resolved placement.
    Raises:
        EngineSetupError: cuda requested without a GPU, 4-bit without bitsandbytes or CUDA, missing model files.
    """
    model_dir = settings.model_dir
    if not (model_dir / "config.json").is_file():
        raise EngineSetupError(
            f"model_dir: {str(model_dir)!r} has no config.json; point it at a transformers model directory "
            "(or build the smoke-test model: python -m model_packages.tiny_model DIR)"
        )
    cuda = torch.cuda.is_available()
    if settings.device == "cuda" and not cuda:
        raise EngineSetupError("device: 'cuda' requested but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    device = torch.device("cuda" if settings.device == "cuda" or (settings.device == "auto" and cuda) else "cpu")
    if settings.load_in_4bit:
        if device.type != "cuda":
            raise EngineSetupError("load_in_4bit: bitsandbytes 4-bit needs a CUDA GPU; none is visible")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise EngineSetupError("load_in_4bit: needs the bitsandbytes package (pip install bitsandbytes)")
    dtype = _DTYPES[settings.dtype] if settings.dtype != "auto" else auto_dtype(device)
    if settings.load_in_4bit:
        dtype = torch.bfloat16
    if device.type == "cpu" and dtype == torch.float16:
        raise EngineSetupError("dtype: float16 is not supported on cpu; use float32 or bfloat16")
    compile_step = settings.compile == "on" or (
        settings.compile == "auto" and device.type == "cuda" and not settings.load_in_4bit
    )
    if settings.load_in_4bit and settings.compile == "auto":
        logger.info(
            "load_in_4bit: decode runs eager (no torch.compile / CUDA graphs): bitsandbytes' 4-bit matmul dequantises "
            "through its own kernels, which this engine has not verified under CUDA-graph capture; set compile: on "
            "to try (a failed compile falls back to eager and says why)"
        )
    return Placement(device=device, dtype=dtype, compile=compile_step, load_in_4bit=settings.load_in_4bit)


def load_model_and_tokenizer(settings: EmbeddedSettings, placement: Placement) -> tuple[Any, Any]:
    """Load the causal LM and its tokenizer from ``settings.model_dir`` onto ``placement.device``.

    Returns:
        ``(model, tokenizer)``, the model in eval mode.
    Raises:
        EngineSetupError: the directory does not hold a causal LM transformers can load.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_memory_fits(settings, placement)
    kwargs: dict[str, Any] = {"dtype": placement.dtype}
    if settings.attn_implementation in ("sdpa", "eager"):
        kwargs["attn_implementation"] = settings.attn_implementation
    if placement.load_in_4bit:
        from transformers import BitsAndBytesConfig

        # The reference guide's configuration: NF4 weights, bfloat16 matmuls.
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": placement.device.index or 0}
    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.model_dir)
        model = AutoModelForCausalLM.from_pretrained(settings.model_dir, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise EngineSetupError(f"model_dir: cannot load a causal LM from {str(settings.model_dir)!r}: {exc}") from exc
    check_context_fits(settings, model.config)
    if not placement.load_in_4bit:
        model = model.to(placement.device)  # type: ignore[arg-type]  # transformers' stub types .to() narrowly
    model.eval()
    if placement.device.type == "cpu" and settings.cpu_onednn and onednn_supports(placement.dtype):
        if settings.cpu_fused and not placement.compile and settings.attn_implementation != "eager":
            model = fuse_for_cpu(model, settings.context_len)
        elif settings.cpu_fused:
            logger.info("fused CPU forward not used: compile on or attn_implementation eager asks for transformers'")
        if not isinstance(model, FusedDecoder):
            pack_linears(model, placement.dtype)
        fixed = settings.cpu_linear_threads
        set_linear_threads(model, fixed if isinstance(fixed, int) else None)
    if not isinstance(model, FusedDecoder) and (
        settings.attn_implementation == "slot"
        or (settings.attn_implementation == "auto" and placement.device.type == "cuda")
    ):
        use_slot_attention(model)
    return model, tokenizer


def thread_tuner(settings: EmbeddedSettings, placement: Placement, model: Any) -> ThreadTuner | None:
    """The tuner of the linear layers' thread count (``cpu_linear_threads: auto`` on a CPU with more CPUs than the
    engine's thread count), else None (a fixed count, a GPU, or nothing to choose between)."""
    if placement.device.type != "cpu" or settings.cpu_linear_threads != "auto" or placement.compile:
        return None
    if not settings.cpu_onednn or not onednn_supports(placement.dtype):
        return None  # no packed layers to set
    base = settings.cpu_threads or default_cpu_threads()
    wide = cpu_count()
    if wide <= base:
        return None
    return ThreadTuner(model, (base, wide))


def footprint(settings: EmbeddedSettings, placement: Placement) -> Footprint | None:
    """The memory this engine will hold on its device (weights, the full KV cache, runtime overhead), estimated from
    the model's ``config.json`` before loading it; None when that file does not give the shapes."""
    try:
        config = json.loads((settings.model_dir / "config.json").read_text(encoding="utf-8"))
        arch = Architecture.from_hf_config(config)
    except (OSError, ValueError, AttributeError):
        return None
    dtype = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[placement.dtype]
    quantization = "bnb-4bit" if placement.load_in_4bit else "none"
    return Footprint(arch, dtype, quantization, core_kv_tokens(settings.max_batch_size, settings.context_len))


def check_memory_fits(settings: EmbeddedSettings, placement: Placement) -> None:
    """On a GPU, refuse to start when the estimate exceeds the free memory (instead of an out-of-memory error in the
    middle of loading or at the first full batch), naming the settings that size it.

    Raises:
        EngineSetupError: the weights and the KV cache the settings ask for do not fit the GPU's free memory.
    """
    need = footprint(settings, placement)
    if need is None or placement.device.type != "cuda":
        return
    free, total = torch.cuda.mem_get_info(placement.device)
    logger.info(
        "memory estimate: %s = %.1f GiB; %.1f of %.1f GiB free",
        need.describe(),
        need.total_gib,
        free / GIB,
        total / GIB,
    )
    if need.total_gib * GIB > free:
        hint = "" if placement.load_in_4bit else ", load_in_4bit: true"
        raise EngineSetupError(
            f"max_batch_size x (max_input_tokens + max_new_tokens_limit): {settings.max_batch_size} x "
            f"{settings.context_len} tokens need ~{need.total_gib:.1f} GiB ({need.describe()}) but the GPU has "
            f"{free / GIB:.1f} GiB free; lower max_batch_size or the token limits{hint}"
        )


def check_context_fits(settings: EmbeddedSettings, config: Any) -> None:
    """A KV-cache slot must not be longer than the model's position table (else an IndexError deep in the model).

    Raises:
        EngineSetupError: naming the two settings and the model's limit.
    """
    positions = model_positions(config)
    if positions is not None and settings.context_len > positions:
        raise EngineSetupError(
            f"max_input_tokens + max_new_tokens_limit: {settings.max_input_tokens} + {settings.max_new_tokens_limit} "
            f"= {settings.context_len} exceeds the model's {positions} positions; lower them so the sum is <= {positions}"
        )


def model_positions(config: Any) -> int | None:
    """The model's position-table size (its longest context), from a config object or a ``config.json`` dict."""
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k, None)
    positions = get("max_position_embeddings") or get("n_positions")
    return positions if isinstance(positions, int) and positions > 0 else None


def model_positions_in(model_dir: Path) -> int | None:
    """:func:`model_positions` of a model directory's ``config.json`` (None when absent or unreadable)."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return model_positions(config) if isinstance(config, dict) else None


def served_model_name(settings: EmbeddedSettings) -> str:
    """The name clients use: the setting, else the smoke-test marker's name, else the directory name."""
    if settings.model_name:
        return settings.model_name
    marker = Path(settings.model_dir) / "SMOKE_TEST_MODEL.json"
    if marker.is_file():
        try:
            name = json.loads(marker.read_text(encoding="utf-8")).get("name")
        except (OSError, ValueError):
            name = None
        if isinstance(name, str) and name:
            return name
    return Path(settings.model_dir).resolve().name


def eos_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Token ids that end a sequence: the generation config's ``eos_token_id`` (int or list) and the tokenizer's."""
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)
