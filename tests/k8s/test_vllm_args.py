"""The vLLM flags the manifests pass are accepted by vLLM's own argument parser, with the configured values.

Needs a Python with vLLM: the engine tier's ``.venv-vllm`` (``make test-engines``) or ``$VLLM_PYTHON``. One
subprocess parses every engine's arguments (importing vLLM takes most of a minute on this machine).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from config import DeploymentConfig
from local.k8s.render import Rendered
from tests.k8s.conftest import REPO

VLLM_PYTHON = Path(os.environ.get("VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")


def vllm_containers(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for d in rendered.docs():
        if d["kind"] == "Deployment" and d["metadata"]["name"] != "gateway":
            tpl = d["spec"]["template"]
        elif d["kind"] == "LeaderWorkerSet":
            tpl = d["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
        else:
            continue
        c = tpl["spec"]["containers"][0]
        if c["name"] == "vllm":
            out.append((d["metadata"]["name"], c))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not VLLM_PYTHON.is_file(), reason="no vLLM venv here: `make test-engines` builds .venv-vllm")
def test_vllm_accepts_the_rendered_flags(
    prod: Rendered, gpu: Rendered, prod_cfg: DeploymentConfig, gpu_cfg: DeploymentConfig
) -> None:
    cases = [(prod_cfg, n, c) for n, c in vllm_containers(prod)] + [(gpu_cfg, n, c) for n, c in vllm_containers(gpu)]
    assert {n for _, n, _ in cases} == {"vllm", "llama70b", "qwen7b"}
    proc = subprocess.run(
        [
            str(VLLM_PYTHON),
            str(Path(__file__).with_name("vllm_parse_args.py")),
            json.dumps([c["args"] for *_, c in cases]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("PARSED ")]
    parsed = json.loads(line.removeprefix("PARSED "))
    for (cfg, name, _), got in zip(cases, parsed, strict=True):
        e = cfg.local.kubernetes.engine(name)
        assert got["model"] == e.model
        assert got["tensor_parallel_size"] == e.tensor_parallel_size
        assert got["pipeline_parallel_size"] == e.pipeline_parallel_size
        assert got["max_num_batched_tokens"] == e.max_num_batched_tokens
        assert got["gpu_memory_utilization"] == e.gpu_memory_utilization
        assert got["max_model_len"] == e.max_model_len
        assert got["quantization"] == e.quantization
        assert got["port"] == 8000 and got["host"] == "0.0.0.0"
        multi = e.gpus > cfg.local.kubernetes.gpu_nodes.gpus_per_node
        assert (got["distributed_executor_backend"] == "ray") == multi
