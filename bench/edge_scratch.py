"""The edge pipeline's first steps in a scratch cache, for the edge experiment scripts in bench/.

The project's own cache and outputs are never touched; the pinned packages are read from the project's cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from config.edge_section import EdgeConfig
from edge import pipeline as P

ROOT = Path(__file__).resolve().parents[1]


def run_steps(
    scratch: Path, overrides: dict[str, Any], steps: tuple[str, ...] = ("data", "tokenizer")
) -> tuple[EdgeConfig, P.State]:
    """Run ``steps`` of the pipeline (in order, each cached under ``scratch``) with ``overrides`` on the defaults.

    Args:
        scratch: folder for the step cache and outputs.
        overrides: ``edge:`` section keys (``data`` is merged with the project's packages folder).
        steps: pipeline step names among data, tokenizer, teacher.
    Returns:
        the validated config and the pipeline state after the steps.
    """
    cfg = EdgeConfig.model_validate(
        {
            **overrides,
            "cache_dir": str(scratch / "cache"),
            "out_dir": str(scratch / "out"),
            "data": {"packages_dir": str(ROOT / "edge/.cache/packages"), **overrides.get("data", {})},
        }
    )
    ctx = P.Context(cfg=cfg, root=ROOT, console=Console(stderr=True))
    P.preflight(ctx)
    ctx.cache.mkdir(parents=True, exist_ok=True)
    st = P.State(versions=P._versions())
    by_name = {"data": P._data, "tokenizer": P._tokenizer, "teacher": P._teacher}
    for name in steps:
        by_name[name](ctx, st)
    return cfg, st
