"""Edge tests run in .venv-edge (`make test-edge`): a tiny configuration, trained and exported once per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from config.edge_section import EdgeConfig
from edge.pipeline import ROOT, Context, run_pipeline

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

try:
    import onnxruntime  # noqa: F401
except ImportError:  # the core venv: these tests belong to `make test-edge` (.venv-edge)
    collect_ignore_glob = ["test_*.py"]

#: Small enough to train, export and validate in well under a minute on 2 cores, big enough to learn the data.
TINY: dict[str, Any] = {
    "data": {"corpus": "synthetic", "limit": 1200},
    "teacher": {
        "pretrained": None,
        "freeze_layers": 0,
        "vocab_size": 700,
        "hidden_size": 64,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 128,
        "epochs": 6,
        "learning_rate": 2e-3,
        "batch_size": 32,
    },
    "student": {"epochs": 6, "learning_rate": 2e-3, "freeze_layers": 0},
    "max_seq_len": 64,
    "calibration_samples": 16,
    "latency_warmup": 2,
    "latency_runs": 5,
    # 120 test examples: one flipped prediction is 0.8 points, and INT8 kernels differ across CPUs (AVX2 vs VNNI).
    "accuracy_gate_points": 5.0,
    "int8_min_agreement": 0.9,
    # The template data is easy but the tiny models are small: floors that still catch a broken model (chance 50%).
    "accuracy_floors": {"en": 0.7, "zh": 0.7},
    "service_accuracy_floor": 0.0,
}


def tiny_config(tmp: Path, **overrides: Any) -> EdgeConfig:
    """The tiny config writing into ``tmp``; nested dicts in ``overrides`` merge into TINY's."""
    data: dict[str, Any] = {**TINY, "out_dir": str(tmp / "out"), "cache_dir": str(tmp / "cache")}
    for k, v in overrides.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    return EdgeConfig.model_validate(data)


def write_env(config_dir: Path, env: str, edge: dict[str, Any]) -> None:
    """Write ``<config_dir>/<env>.yaml``: the repo's dev.yaml with ``environment: env`` and this edge section."""
    base = yaml.safe_load((ROOT / "config" / "dev.yaml").read_text(encoding="utf-8"))
    base["environment"] = env
    base["edge"] = edge
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / f"{env}.yaml").write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's tiny run keeps its cache and outputs."""
    return tmp_path_factory.mktemp("edge-tiny")


@pytest.fixture(scope="session")
def tiny_run(tiny_dir: Path) -> tuple[EdgeConfig, dict[str, Any]]:
    """Run the whole pipeline once on the tiny config; returns ``(config, report)``."""
    cfg = tiny_config(tiny_dir)
    report = run_pipeline(Context(cfg, ROOT, Console(stderr=True, quiet=True)))
    return cfg, report


#: A slice of the real pipeline: the downloaded corpus, e5-small cut to 2 layers, a 1-layer student, ONNX only.
#: Too small to learn (80 training texts); it checks the plumbing end to end, the default run checks accuracy.
REAL_SLICE: dict[str, Any] = {
    "data": {"train_per_language": 40, "test_per_language": 20, "validation_per_language": 10},
    "teacher": {
        "pretrained_layers": 2,
        "vocab_size": 1500,
        "vocab_texts_per_language": 150,
        "freeze_layers": 1,
        "epochs": 1,
        "learning_rate": 2e-4,
        "batch_size": 16,
    },
    "student": {"num_layers": 1, "freeze_layers": 0, "epochs": 1, "batch_size": 16},
    "variants": ["onnx_fp32", "onnx_int8"],
    "latency_warmup": 1,
    "latency_runs": 3,
    "accuracy_gate_points": 100.0,
    "int8_min_agreement": 0.0,
    "accuracy_floors": {"en": 0.0, "zh": 0.0},
    "service_accuracy_floor": 0.0,
}


@pytest.fixture(scope="session")
def real_slice_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[EdgeConfig, dict[str, Any]]:
    """The real-data slice, run once per session; returns ``(config, report)``."""
    tmp = tmp_path_factory.mktemp("edge-real")
    cfg = EdgeConfig.model_validate({**REAL_SLICE, "out_dir": str(tmp / "out"), "cache_dir": str(tmp / "cache")})
    return cfg, run_pipeline(Context(cfg, ROOT, Console(stderr=True, quiet=True)))
