"""Renders of the committed configs (prod, and the multi-GPU example onprem-gpu), built once per session."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import DeploymentConfig, load_config
from config.loader import parse_config
from local.k8s.render import Rendered, render, write

REPO = Path(__file__).resolve().parents[2]
VERSION = "1.33"


def raw(env: str) -> dict[str, Any]:
    """config/<env>.yaml as plain data, to change and re-parse."""
    return yaml.safe_load((REPO / "config" / f"{env}.yaml").read_text(encoding="utf-8"))


def with_k8s(env: str, **changes: Any) -> DeploymentConfig:
    """The env's config with keys under local.kubernetes replaced (dotted paths)."""
    data = copy.deepcopy(raw(env))
    for dotted, value in changes.items():
        node = data["local"]["kubernetes"]
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return parse_config(data, f"{env}.yaml")


def docs_of(r: Rendered, kind: str) -> list[dict[str, Any]]:
    return [d for d in r.docs() if d["kind"] == kind]


def find(r: Rendered, kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs_of(r, kind) if d["metadata"]["name"] == name]
    return doc


@pytest.fixture(scope="session")
def prod_cfg() -> DeploymentConfig:
    return load_config("prod")


@pytest.fixture(scope="session")
def gpu_cfg() -> DeploymentConfig:
    return load_config("onprem-gpu")


@pytest.fixture(scope="session")
def prod(prod_cfg: DeploymentConfig) -> Rendered:
    return render(prod_cfg)


@pytest.fixture(scope="session")
def gpu(gpu_cfg: DeploymentConfig) -> Rendered:
    return render(gpu_cfg)


@pytest.fixture(scope="session")
def prod_dir(prod: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "prod"
    write(prod, out)
    return out


@pytest.fixture(scope="session")
def gpu_dir(gpu: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "onprem-gpu"
    write(gpu, out)
    return out
