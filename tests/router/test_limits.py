"""Router bounds and defaults come from one table (router/limits.py): the config section and the Lambda agree."""

from __future__ import annotations

import annotated_types
import pytest
from pydantic import ValidationError

from config.router_section import RouterConfig, router_environment
from router.errors import SettingsError
from router.limits import LIMITS
from router.settings import Settings


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_config_section_reads_the_table(name: str) -> None:
    bound = LIMITS[name]
    field = RouterConfig.model_fields[name]
    assert field.default == bound.default
    meta = {type(m): m for m in field.metadata}
    if bound.lo_open:
        assert meta[annotated_types.Gt].gt == bound.lo
    else:
        assert meta[annotated_types.Ge].ge == bound.lo
    assert meta[annotated_types.Le].le == bound.hi
    assert getattr(Settings(), name) == bound.default


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_both_sides_accept_and_reject_the_same_values(name: str) -> None:
    bound = LIMITS[name]
    env = f"ROUTER_{name.upper()}"
    over = bound.hi + 1
    under = bound.lo if bound.lo_open else bound.lo - 1
    base = {"local_timeout_s": 1.0, "cloud_timeout_s": 1.0}  # keeps the HTTP-API timeout check out of the way
    for value in (over, under):
        with pytest.raises(SettingsError, match=env):
            Settings.from_env({env: str(int(value) if bound.integer else value)})
        with pytest.raises(ValidationError, match=name):
            RouterConfig.model_validate(base | {name: value})
    top = int(bound.hi) if bound.integer else bound.hi
    assert getattr(Settings.from_env({env: str(top)}), name) == top
    if name not in base:
        assert getattr(RouterConfig.model_validate(base | {name: top}), name) == top


def test_generated_environment_reads_back_to_the_same_settings() -> None:
    cfg = RouterConfig.model_validate(
        {
            "policy": "redact_to_cloud",
            "complexity_threshold": 0.37,
            "local_timeout_s": 4.5,
            "cloud_timeout_s": 12,
            "breaker_failures": 7,
            "breaker_reset_s": 90,
            "max_body_bytes": 65536,
            "default_max_tokens": 1024,
            "allow_route_hint": False,
            "custom_keywords": ["project falcon"],
            "caller_overrides": {"arn:aws:iam::1:role/x": {"force_target": "local"}},
        }
    )
    s = Settings.from_env(router_environment(cfg))
    for name in (*LIMITS, "policy", "allow_route_hint"):
        assert getattr(s, name) == getattr(cfg, name), name
    assert (
        s.custom_keywords == ("project falcon",) and s.caller_overrides["arn:aws:iam::1:role/x"].force_target == "local"
    )
