"""The router Lambda asset vendors the one wire package: the staged copy is identical and the asset imports alone."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from stacks.constructs.router_api import ROUTER_DIR, WIRE_DIR, stage_router_asset


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.py") if "__pycache__" not in p.parts}


def test_asset_holds_identical_copies(tmp_path: Path) -> None:
    stage_router_asset(tmp_path)
    for src in (WIRE_DIR, ROUTER_DIR):
        staged = tmp_path / src.name
        assert _files(staged) == _files(src)
        _, mismatch, errors = filecmp.cmpfiles(src, staged, sorted(_files(src)), shallow=False)
        assert mismatch == [] and errors == [], (src.name, mismatch, errors)


def test_asset_imports_on_its_own(tmp_path: Path) -> None:
    stage_router_asset(tmp_path)
    code = (
        "import sys; sys.path.insert(0, '.'); import router.handler, wire.validate; "
        "assert 'boto3' not in sys.modules; print(wire.__file__)"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).resolve().is_relative_to(tmp_path.resolve())
