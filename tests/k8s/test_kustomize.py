"""The render folder builds with kustomize (``kubectl kustomize``, offline) into exactly the rendered documents."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from local.k8s.render import Rendered

KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (kustomize) not installed here; the schema tests still run")
@pytest.mark.parametrize("which", ["prod", "gpu"])
def test_kustomize_builds_the_folder(which: str, request: pytest.FixtureRequest) -> None:
    rendered: Rendered = request.getfixturevalue(which)
    folder: Path = request.getfixturevalue(f"{which}_dir")
    assert KUBECTL is not None
    out = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, check=True, timeout=60)
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, built)) == sorted(map(key, rendered.docs()))
    by_key = {key(d): d for d in built}
    for d in rendered.docs():
        assert by_key[key(d)] == d, key(d)
