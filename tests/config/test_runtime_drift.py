"""endpoint.runtime must accept exactly what the handler accepts: bounds and defaults read from the handler itself.

The handler's table (``Limits.from_env``) is probed programmatically: each bound must be accepted and one past it
refused, and the defaults must agree, so a change on either side without the other fails here.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from annotated_types import Ge, Le

from config import load_config
from config.schema import RuntimeSection
from stacks.container_env import handler_environment

Limits: Any = pytest.importorskip("inference.inference").Limits

# config field -> the handler's environment variable (the names handler_environment writes)
FIELDS = {
    "max_input_tokens": "MAX_INPUT_TOKENS",
    "max_new_tokens": "MAX_NEW_TOKENS",
    "default_max_new_tokens": "DEFAULT_MAX_NEW_TOKENS",
    "max_batch_size": "MAX_BATCH_SIZE",
    "batch_window_ms": "BATCH_WINDOW_MS",
    "batch_max_wait_ms": "BATCH_MAX_WAIT_MS",
    "engine_connect_timeout_s": "ENGINE_CONNECT_TIMEOUT_S",
    "engine_start_timeout_s": "ENGINE_START_TIMEOUT_S",
}


def _bounds(field: str) -> tuple[int, int]:
    meta = RuntimeSection.model_fields[field].metadata
    lo = next(int(m.ge) for m in meta if isinstance(m, Ge))
    hi = next(int(m.le) for m in meta if isinstance(m, Le))
    return lo, hi


def _accepts(env: dict[str, str]) -> bool:
    try:
        Limits.from_env(env)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_config_bounds_equal_the_handler_bounds(field: str) -> None:
    var = FIELDS[field]
    lo, hi = _bounds(field)
    # DEFAULT_MAX_NEW_TOKENS is clamped to MAX_NEW_TOKENS by the handler: probe it with the cap raised.
    base = {"MAX_NEW_TOKENS": str(_bounds("max_new_tokens")[1])} if field == "default_max_new_tokens" else {}
    assert _accepts({**base, var: str(lo)}), f"handler refuses {var}={lo}, the config's lower bound"
    assert _accepts({**base, var: str(hi)}), f"handler refuses {var}={hi}, the config's upper bound"
    assert not _accepts({**base, var: str(lo - 1)}), f"handler accepts {var}={lo - 1}, below the config's bound"
    assert not _accepts({**base, var: str(hi + 1)}), f"handler accepts {var}={hi + 1}, above the config's bound"


def test_config_defaults_equal_the_handler_defaults() -> None:
    handler, config = Limits(), RuntimeSection()
    for field in [*FIELDS, "truncate_input", "engine_mode"]:
        assert getattr(config, field) == getattr(handler, field), field


def test_generated_environment_reads_back_as_the_config() -> None:
    """What synth writes is what the handler reads: every field round-trips through Limits.from_env."""
    cfg = load_config("prod")
    rt = cfg.endpoint.runtime.model_copy(
        update={
            "max_input_tokens": 3000,
            "max_new_tokens": 700,
            "default_max_new_tokens": 99,
            "truncate_input": False,
            "engine_mode": "shared",
        }
    )
    cfg = cfg.model_copy(update={"endpoint": cfg.endpoint.model_copy(update={"runtime": rt})})
    limits = Limits.from_env(handler_environment(cfg))
    for field in [*FIELDS, "truncate_input", "engine_mode"]:
        assert getattr(limits, field) == getattr(rt, field), field
    assert limits.dtype == "float16"  # model.dtype fp16


def test_handler_reads_no_limit_the_config_cannot_set() -> None:
    """Every MAX_*/BATCH_*/TRUNCATE_*/DTYPE variable the handler documents has a typed config field."""
    source = inspect.getsource(Limits.from_env)
    read = set(re.findall(r'"((?:MAX|DEFAULT|BATCH|TRUNCATE|ENGINE)_[A-Z_]+|DTYPE)"', source))
    read.discard("ENGINE_SOCKET_DIR")  # a path inside the container, not a limit: the handler's default is right
    assert len(read) >= 8, f"the probe found only {sorted(read)}; has the handler's table moved?"
    written = set(handler_environment(load_config("prod")).keys())
    assert read <= written, f"handler reads {sorted(read - written)} which synth never writes"
