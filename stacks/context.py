"""The feature flags from cdk.json, for Apps built outside the CDK CLI (tests, review) to match `cdk synth`."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


@cache
def _read() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8"))
    return dict(data.get("context", {}))


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context (feature flags) plus ``overrides``; a bare ``App()`` would not read cdk.json."""
    return {**_read(), **overrides}
