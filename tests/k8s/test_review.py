"""`make k8s-review`: the page says what runs where, what traffic is allowed, the totals and what changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from local.k8s import __main__ as cli
from local.k8s.render import Rendered, write
from local.k8s.render import render as render_cfg
from local.k8s.review import build_review, changes, keep_as_previous
from tests.k8s.conftest import VERSION, with_k8s


def page(folder: Path, previous: Path | None = None) -> str:
    return build_review("onprem-gpu", folder, previous, VERSION, [], None, ["ollama (ollama)"])


def test_totals_follow_the_config(gpu_dir: Path, gpu_cfg) -> None:
    k = gpu_cfg.local.kubernetes
    text = page(gpu_dir)
    gpus = sum(k.engine(n).gpus * k.engine(n).replicas for n in ("llama70b", "qwen7b", "structured"))
    assert gpus == 26
    assert f"| GPUs | {gpus} | {gpus} |" in text
    # CPU: engines + gateway at min replicas, and at the HPA maximum.
    engines_cpu = 2 * 32 + 3 * 8 + 16
    assert f"| CPU cores | {engines_cpu + 3 * 1} | {engines_cpu + 12 * 1} |" in text
    assert "| llama70b | LeaderWorkerSet | 1 | worker | 1 | nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 | 8 |" in text
    assert "| qwen7b | Deployment | 3 | pod | 3 | nvidia.com/gpu.product=NVIDIA-L40S | 2 |" in text
    assert "| gateway | Deployment | 3-12 (HPA) | pod | 3 | any node | - | 1 / 2 | 1Gi / 1Gi |" in text
    assert "| llama-3-3-70b-weights | existing (not rendered) | - | - |" in text
    assert "Not in the cluster" in text and "ollama (ollama)" in text


def test_traffic_is_read_from_the_policies(gpu_dir: Path) -> None:
    text = page(gpu_dir)
    assert "Everything not listed is denied (default-deny policy on every pod)." in text
    assert "| namespaces customer-service | pods gateway | TCP/8080 | gateway |" in text
    assert "| pods gateway in llm-onprem | pods structured | TCP/30000 | engine-structured |" in text
    assert "| pods llama70b in llm-onprem | pods llama70b | all ports | engine-llama70b |" in text
    # Nothing but the gateway (and Prometheus' namespace) reaches an engine's port.
    for line in text.splitlines():
        if "| pods qwen7b |" in line and line.startswith("| ") and "TCP/8000" in line:
            assert line.split("|")[1].strip() in {"pods gateway in llm-onprem", "namespaces monitoring"}


def test_secrets_listed_with_their_users(gpu_dir: Path) -> None:
    text = page(gpu_dir)
    assert "| Secret (files) | llm-engine-api-keys | VLLM_API_KEY | gateway, llama70b, qwen7b |" in text
    assert "| Secret (files) | llm-gateway-api-keys | api_keys | gateway |" in text
    assert "ConfigMap (environment)" not in text  # no private AWS path in this example


def test_private_path_configmap_and_networks_listed(prod_dir: Path) -> None:
    text = build_review("prod", prod_dir, None, VERSION, [], None, [])
    assert (
        "| ConfigMap (environment) | gateway-aws-private | AWS_ENDPOINT_URL_* from `make onprem-env` | gateway |"
        in text
    )
    assert "| network 10.30.0.0/16 (outside the cluster) | pods gateway | TCP/8080 | gateway |" in text
    assert "| pods gateway | network 10.30.0.0/16 (outside the cluster) | TCP/443 | gateway |" in text


def test_changes_since_the_previous_review(gpu_dir: Path, tmp_path: Path) -> None:
    previous = tmp_path / "reviewed"
    keep_as_previous(gpu_dir, previous)
    assert "(no changes)" in page(gpu_dir, previous)
    changed: Rendered = render_cfg(with_k8s("onprem-gpu", engines__qwen7b__replicas=4, scrape_engines=False))
    new = tmp_path / "new"
    write(changed, new)
    text = page(new, previous)
    assert "~ Deployment/qwen7b\n    spec.replicas: 3 -> 4" in text
    assert "~ NetworkPolicy/engine-qwen7b" in text
    assert "(no previous review: everything is new)" in page(gpu_dir, tmp_path / "none")


def test_added_and_removed_resources() -> None:
    a = {"kind": "Service", "metadata": {"name": "a"}}
    b = {"kind": "Service", "metadata": {"name": "b"}}
    assert changes([a], [b]) == ["+ Service/b", "- Service/a"]
    assert changes(None, [a]) == ["(no previous review: everything is new)"]


def test_cli_render_validate_review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert cli.main(["render", "--env", "prod", "--out", str(tmp_path)]) == 0
    assert "Kubernetes 1.33 schemas: 0 problem(s)" in capsys.readouterr().out
    assert (tmp_path / "prod" / "kustomization.yaml").is_file()
    # A hand edit that breaks a manifest makes `validate` fail, naming it.
    f = tmp_path / "prod" / "gateway.yaml"
    docs = list(yaml.safe_load_all(f.read_text()))
    docs[2]["spec"]["replicas"] = "two"
    f.write_text(yaml.safe_dump_all(docs))
    assert cli.main(["validate", "--env", "prod", "--out", str(tmp_path)]) == 1
    assert "Deployment/gateway: spec.replicas" in capsys.readouterr().err
    # review re-renders (fixing the edit), writes the page and keeps this render as the next baseline.
    assert cli.main(["review", "--env", "prod", "--out", str(tmp_path), "--checkov", str(tmp_path / "no")]) == 0
    text = (tmp_path / "REVIEW-prod.md").read_text()
    assert "all 23 documents valid" in text and "checkov: not run" in text
    assert (tmp_path / ".reviewed" / "prod" / "gateway.yaml").is_file()


def test_cli_config_errors_exit_2(capsys) -> None:
    assert cli.main(["render", "--env", "dev", "--out", "/nonexistent"]) == 2
    assert "local.profile: 'embedded' has no vLLM/SGLang engine" in capsys.readouterr().err
    assert cli.main(["render", "--env", "Bad!", "--out", "/nonexistent"]) == 2


def test_review_copy_is_independent(gpu_dir: Path, tmp_path: Path) -> None:
    previous = tmp_path / "p"
    keep_as_previous(gpu_dir, previous)
    keep_as_previous(gpu_dir, previous)  # replacing an older baseline works
    assert sorted(p.name for p in previous.iterdir()) == sorted(p.name for p in gpu_dir.iterdir())


def test_engine_flags_on_the_page(gpu_dir: Path) -> None:
    text = page(gpu_dir)
    assert "| llama70b | vllm | 2 | /models/Llama-3.3-70B-Instruct | 8 | 2 | 16384 | 0.9 | 32768 |" in text
    assert "| structured | sglang | 1 | /models/Llama-3.1-70B-Instruct-AWQ | 4 | 1 | 8192 | 0.85 | - |" in text


def test_rate_limit_adds_up_across_replicas(gpu_dir: Path, gpu_cfg) -> None:
    rate = gpu_cfg.local.rate_limit.per_key_per_s
    g = gpu_cfg.local.kubernetes.gateway
    assert (
        f"{rate:g} requests/s per gateway replica, so {rate * g.min_replicas:g}-{rate * g.max_replicas:g} requests/s"
        in page(gpu_dir)
    )
