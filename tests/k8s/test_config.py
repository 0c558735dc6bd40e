"""local.kubernetes refuses what cannot be laid out, naming the field; the renderer refuses what it cannot run."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from config import ConfigError
from config.loader import parse_config
from local.k8s.render import render
from tests.k8s.conftest import raw, with_k8s


def refused(env: str, **changes: Any) -> str:
    with pytest.raises(ConfigError) as err:
        with_k8s(env, **changes)
    return str(err.value)


def test_committed_configs_load(prod_cfg, gpu_cfg) -> None:
    assert prod_cfg.local.kubernetes.engine("vllm").replicas == 2
    assert gpu_cfg.local.kubernetes.engine("llama70b").gpus == 16


def test_unknown_engine_is_named() -> None:
    msg = refused("prod", engines={"vllm2": {"replicas": 1}})
    assert "local.kubernetes.engines.vllm2: no such engine in local" in msg
    assert "['ollama', 'sglang', 'vllm']" in msg


def test_engine_of_other_kind_is_refused() -> None:
    msg = refused("prod", engines={"ollama": {}})
    assert "engines.ollama: a ollama engine does not run on Kubernetes here" in msg


def test_parallel_layout_must_fill_whole_nodes() -> None:
    msg = refused("onprem-gpu", engines__llama70b__pipeline_parallel_size=3, gpu_nodes__gpus_per_node=16)
    assert "engines.llama70b.tensor_parallel_size: 8 x pipeline 3 = 24 GPUs does not fill whole nodes" in msg


def test_multi_node_sglang_is_refused() -> None:
    msg = refused("onprem-gpu", engines__structured__tensor_parallel_size=16)
    assert "multi-node serving is rendered for vLLM (Ray) only, not sglang" in msg


def test_read_write_once_cache_on_several_nodes_is_refused() -> None:
    msg = refused("prod", engines__sglang__replicas=2)
    assert "engines.sglang.model_cache.access_mode: ReadWriteOnce cannot be mounted by pods on several nodes" in msg


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("vllm/vllm-openai", "pin a tag or a digest"),
        ("vllm/vllm-openai:latest", "':latest' moves under you"),
        ("vllm/vllm-openai:v1 --privileged", "not an image reference"),
    ],
)
def test_images_must_be_pinned(image: str, why: str) -> None:
    assert why in refused("prod", engines__vllm__image=image)


def test_quantities_and_bounds() -> None:
    assert "'lots': a CPU quantity" in refused("prod", gateway__resources={"cpu": "lots"})
    assert "memory_limit: 1Gi is below the request 2Gi" in refused(
        "prod", gateway__resources={"memory": "2Gi", "memory_limit": "1Gi"}
    )
    assert "min_replicas: 9 > max_replicas 8" in refused("prod", gateway__min_replicas=9)
    assert "gpu_memory_utilization" in refused("prod", engines__vllm__gpu_memory_utilization=1.5)
    assert "unknown key" in refused("prod", engines__vllm__tensor_parallel=2)


def test_render_refuses_a_profile_without_cluster_engines() -> None:
    data = copy.deepcopy(raw("prod"))
    data["local"]["profile"] = "embedded"
    del data["local"]["kubernetes"]["engines"]
    cfg = parse_config(data, "prod.yaml")
    with pytest.raises(ConfigError, match=r"local.profile: 'embedded' has no vLLM/SGLang engine"):
        render(cfg)


def test_render_refuses_no_allowed_namespaces() -> None:
    cfg = with_k8s("prod", gateway__allowed_namespaces=[])
    with pytest.raises(ConfigError, match=r"local.kubernetes.gateway.allowed_namespaces: name the namespaces"):
        render(cfg)


def test_sglang_with_two_served_names_is_refused() -> None:
    data = copy.deepcopy(raw("onprem-gpu"))
    eng = data["local"]["engines"][2]
    eng["models"] = ["a", "b"]
    eng["upstream_models"] = {"a": "x", "b": "y"}
    with pytest.raises(ConfigError, match=r"local.engines.structured.upstream_models: SGLang serves one name"):
        render(parse_config(data, "onprem-gpu.yaml"))
