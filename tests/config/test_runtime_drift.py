"""endpoint.runtime and the handler read one table: every variable the handler reads is generated from the typed
config, with the handler's own defaults and bounds, and what synth writes reads back through the handler's reader.

The table is ``local/embedded/limits.py`` (RUNTIME_ENV), which ``inference/inference.py`` reads in ``model_fn``.
Besides comparing the numbers, the reader is probed at each config bound and one past it, so a reader that stopped
honouring its own table would fail here too.
"""

from __future__ import annotations

import pytest
from annotated_types import Ge, Le

from config import load_config
from config.schema import RuntimeSection
from local.embedded.limits import RUNTIME_ENV, read_runtime_env
from stacks.container_env import handler_environment

# Generated from the model section, not from endpoint.runtime (one name per concept: model.dtype, model.quantization).
FROM_MODEL = {"DTYPE", "LOAD_IN_4BIT"}


def _bounds(field: str) -> tuple[int, int]:
    meta = RuntimeSection.model_fields[field].metadata
    return next(int(m.ge) for m in meta if isinstance(m, Ge)), next(int(m.le) for m in meta if isinstance(m, Le))


def _accepts(env: dict[str, str]) -> bool:
    try:
        read_runtime_env(env)
    except ValueError:
        return False
    return True


def test_every_handler_variable_has_a_typed_source() -> None:
    fields = RuntimeSection.model_fields
    for var in RUNTIME_ENV:
        if var.name in FROM_MODEL:
            continue
        field = var.name.lower()
        assert field in fields, f"the handler reads {var.name} but endpoint.runtime has no {field}"
        assert fields[field].default == var.default, f"{field}: default differs from the handler's {var.default!r}"
    written = set(handler_environment(load_config("prod")))
    assert {v.name for v in RUNTIME_ENV} <= written


@pytest.mark.parametrize("var", [v for v in RUNTIME_ENV if v.kind == "int"], ids=lambda v: v.name)
def test_config_bounds_equal_the_handler_bounds(var: object) -> None:
    name = var.name  # type: ignore[attr-defined]
    lo, hi = _bounds(name.lower())
    # DEFAULT_MAX_NEW_TOKENS is clamped to MAX_NEW_TOKENS by the handler: probe it with the cap raised.
    base = {"MAX_NEW_TOKENS": str(_bounds("max_new_tokens")[1])} if name == "DEFAULT_MAX_NEW_TOKENS" else {}
    assert _accepts({**base, name: str(lo)}) and _accepts({**base, name: str(hi)}), f"handler refuses {lo}..{hi}"
    assert not _accepts({**base, name: str(lo - 1)}), f"handler accepts {name}={lo - 1}, below the config's bound"
    assert not _accepts({**base, name: str(hi + 1)}), f"handler accepts {name}={hi + 1}, above the config's bound"


def test_generated_environment_reads_back_as_the_config() -> None:
    """What synth writes is what the handler reads: every field round-trips through read_runtime_env."""
    cfg = load_config("prod")
    rt = cfg.endpoint.runtime.model_copy(
        update={
            "max_input_tokens": 3000,
            "max_new_tokens": 700,
            "default_max_new_tokens": 99,
            "truncate_input": False,
            "compile": "off",
            "engine_mode": "shared",
        }
    )
    model = cfg.model.model_copy(update={"quantization": "bnb-4bit"})
    cfg = cfg.model_copy(update={"model": model, "endpoint": cfg.endpoint.model_copy(update={"runtime": rt})})
    limits = read_runtime_env(handler_environment(cfg))
    for var in RUNTIME_ENV:
        if var.name not in FROM_MODEL:
            assert getattr(limits, var.name.lower()) == getattr(rt, var.name.lower()), var.name
    assert (limits.dtype, limits.load_in_4bit) == ("float16", True)  # model.dtype fp16, quantization bnb-4bit
