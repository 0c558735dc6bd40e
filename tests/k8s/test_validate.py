"""Every rendered document validates against the pinned Kubernetes schemas; broken ones are caught."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from local.k8s.render import Rendered
from local.k8s.validate import validate_dir, validate_doc
from tests.k8s.conftest import VERSION, find


@pytest.mark.parametrize("which", ["prod", "gpu"])
def test_all_documents_valid(which: str, request: pytest.FixtureRequest) -> None:
    rendered: Rendered = request.getfixturevalue(which)
    folder: Path = request.getfixturevalue(f"{which}_dir")
    assert validate_dir(folder, VERSION) == []
    kinds = {d["kind"] for d in rendered.docs()}
    assert {"Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor"} <= kinds


def test_the_pinned_version_is_used(prod_cfg) -> None:
    assert prod_cfg.local.kubernetes.kubernetes_version == VERSION


def test_unknown_field_in_a_builtin_kind_fails(prod: Rendered) -> None:
    dep = copy.deepcopy(find(prod, "Deployment", "vllm"))
    dep["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    (msg,) = validate_doc(dep, VERSION)
    assert msg.startswith("Deployment/vllm: spec.template.spec.containers.0:")
    assert "readinesProbe" in msg


def test_wrong_type_fails(prod: Rendered) -> None:
    hpa = copy.deepcopy(find(prod, "HorizontalPodAutoscaler", "gateway"))
    hpa["spec"]["maxReplicas"] = "eight"
    assert validate_doc(hpa, VERSION) == [
        "HorizontalPodAutoscaler/gateway: spec.maxReplicas: 'eight' is not of type 'integer'"
    ]


def test_leader_worker_set_shape_and_pod_templates(gpu: Rendered) -> None:
    lws = find(gpu, "LeaderWorkerSet", "llama70b")
    assert validate_doc(lws, VERSION) == []
    typo = copy.deepcopy(lws)
    typo["spec"]["leaderWorkerTemplate"]["restartPolcy"] = "None"
    assert any("restartPolcy" in e for e in validate_doc(typo, VERSION))
    size = copy.deepcopy(lws)
    size["spec"]["leaderWorkerTemplate"]["size"] = 0
    assert any("leaderWorkerTemplate.size: 0 is less than the minimum of 1" in e for e in validate_doc(size, VERSION))
    # The pod templates inside go through the real PodTemplateSpec schema.
    bad_pod = copy.deepcopy(lws)
    bad_pod["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["resources"]["limit"] = {}
    (msg,) = validate_doc(bad_pod, VERSION)
    assert "workerTemplate as PodTemplate/llama70b" in msg and "limit" in msg


def test_service_monitor_shape(prod: Rendered) -> None:
    sm = find(prod, "ServiceMonitor", "llm-deploy")
    assert validate_doc(sm, VERSION) == []
    bad = copy.deepcopy(sm)
    bad["spec"]["endpoints"][0]["interval"] = "30 seconds"
    assert any("spec.endpoints.0.interval" in e for e in validate_doc(bad, VERSION))
    bad = copy.deepcopy(sm)
    del bad["spec"]["selector"]
    assert any("'selector' is a required property" in e for e in validate_doc(bad, VERSION))


def test_a_kustomization_that_misses_a_file_is_caught(prod_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    folder.mkdir()
    for f in prod_dir.iterdir():
        (folder / f.name).write_text(f.read_text())
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    k["resources"].remove("monitoring.yaml")
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(k))
    (msg,) = validate_dir(folder, VERSION)
    assert msg.startswith("kustomization.yaml: resources") and "monitoring.yaml" in msg
