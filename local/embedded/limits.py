"""The SageMaker container's environment variables: names, defaults and bounds, in one standard-library-only table.

The handler (``inference/inference.py``, shipped in ``model.tar.gz``) reads them once in ``model_fn`` with
:func:`read_runtime_env`; the typed config that generates the endpoint's environment reads :data:`RUNTIME_ENV` for
the same names, defaults and bounds, so the two cannot drift. Standard library only: ``config/`` and the container
both import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# Bounds shared with local.embedded.settings (which re-checks them): a KV-cache slot and the batch slots.
MAX_CONTEXT_CEILING = 131_072
MAX_BATCH_SIZE_CEILING = 1024
DTYPES = ("auto", "bfloat16", "float16", "float32")
# Variables earlier handlers read that no longer do anything (the micro-batcher and its window are gone: the
# generation core batches continuously). Reading one logs a warning instead of silently ignoring it.
RETIRED = ("BATCH_WINDOW_MS", "BATCH_MAX_WAIT_MS")


@dataclass(frozen=True)
class EnvVar:
    """One container variable: its type, default, bounds (ints) or choices (strings) and meaning."""

    name: str
    kind: Literal["int", "bool", "choice"]
    default: int | bool | str
    help: str
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] = ()


RUNTIME_ENV: tuple[EnvVar, ...] = (
    EnvVar("MAX_INPUT_TOKENS", "int", 1024, "longest prompt in tokens", 1, MAX_CONTEXT_CEILING),
    EnvVar("MAX_NEW_TOKENS", "int", 512, "cap on generated tokens per request", 1, 32_768),
    EnvVar("DEFAULT_MAX_NEW_TOKENS", "int", 128, "generated tokens when a request names none", 1, 32_768),
    EnvVar("MAX_BATCH_SIZE", "int", 32, "sequences generated together; also the most inputs per request", 1, 1024),
    EnvVar("TRUNCATE_INPUT", "bool", True, "keep the end of an over-long prompt instead of answering 413"),
    EnvVar("DTYPE", "choice", "auto", "weights/compute dtype; auto: bfloat16 on GPUs with it", choices=DTYPES),
    EnvVar("COMPILE", "choice", "auto", "torch.compile + CUDA graphs for decode", choices=("auto", "on", "off")),
    EnvVar("LOAD_IN_4BIT", "bool", False, "bitsandbytes NF4 weights (GPU with bitsandbytes installed)"),
    EnvVar("ENGINE_MODE", "choice", "local", "shared: one engine per GPU for all workers", choices=("local", "shared")),
    EnvVar("ENGINE_CONNECT_TIMEOUT_S", "int", 60, "shared mode: wait for the engine socket", 1, 3600),
    EnvVar("ENGINE_START_TIMEOUT_S", "int", 900, "shared mode: wait for the owner to load the model", 1, 7200),
)
BY_NAME = {v.name: v for v in RUNTIME_ENV}


@dataclass(frozen=True)
class RuntimeLimits:
    """The container's limits, read once per worker from its environment."""

    max_input_tokens: int = 1024
    max_new_tokens: int = 512
    default_max_new_tokens: int = 128
    max_batch_size: int = 32
    truncate_input: bool = True
    dtype: str = "auto"
    compile: str = "auto"
    load_in_4bit: bool = False
    engine_mode: str = "local"
    engine_connect_timeout_s: int = 60
    engine_start_timeout_s: int = 900


def _parse(var: EnvVar, raw: str) -> int | bool | str:
    text = raw.strip()
    if var.kind == "int":
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{var.name}: {raw!r} is not an integer (allowed {var.lo}..{var.hi})") from None
        assert var.lo is not None and var.hi is not None
        if not var.lo <= value <= var.hi:
            raise ValueError(f"{var.name}: {value} is out of range (allowed {var.lo}..{var.hi})")
        return value
    if var.kind == "bool":
        if text.lower() in {"true", "1", "yes"}:
            return True
        if text.lower() in {"false", "0", "no"}:
            return False
        raise ValueError(f"{var.name}: {raw!r} is not a boolean (allowed true|false)")
    if text.lower() not in var.choices:
        raise ValueError(f"{var.name}: {raw!r} is not allowed (allowed {', '.join(var.choices)})")
    return text.lower()


def read_runtime_env(env: Mapping[str, str] | None = None) -> RuntimeLimits:
    """Read and check every variable of :data:`RUNTIME_ENV` from ``env`` (default ``os.environ``).

    An unset or empty variable takes its default; ``DEFAULT_MAX_NEW_TOKENS`` is lowered to ``MAX_NEW_TOKENS``.

    Raises:
        ValueError: a malformed or out-of-range value, naming the variable and what is allowed.
    """
    env = os.environ if env is None else env
    values: dict[str, int | bool | str] = {}
    for var in RUNTIME_ENV:
        raw = env.get(var.name)
        values[var.name.lower()] = var.default if raw is None or not raw.strip() else _parse(var, raw)
    values["default_max_new_tokens"] = min(int(values["default_max_new_tokens"]), int(values["max_new_tokens"]))
    return RuntimeLimits(**values)  # type: ignore[arg-type]  # keys and types follow RUNTIME_ENV


def retired_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """The retired variables that are set (the handler warns about each)."""
    env = os.environ if env is None else env
    return [name for name in RETIRED if env.get(name)]
