"""Properties of the rendered manifests, each derived from the config that produced them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import parse_config
from local.k8s import render as r
from local.k8s.render import Rendered, dump, render, write
from tests.k8s.conftest import docs_of, find, with_k8s

Doc = dict[str, Any]


def pod_templates(rendered: Rendered) -> list[tuple[str, Doc]]:
    out = []
    for d in rendered.docs():
        if d["kind"] == "Deployment":
            out.append((d["metadata"]["name"], d["spec"]["template"]))
        elif d["kind"] == "LeaderWorkerSet":
            t = d["spec"]["leaderWorkerTemplate"]
            out += [(d["metadata"]["name"] + "/leader", t["leaderTemplate"])]
            out += [(d["metadata"]["name"] + "/worker", t["workerTemplate"])]
    return out


def arg(container: Doc, flag: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in container.get("args", []) if a.startswith(flag + "=")]
    return value


def test_single_node_engines_request_tp_times_pp_gpus(prod, prod_cfg, gpu, gpu_cfg) -> None:
    for rendered, cfg in ((prod, prod_cfg), (gpu, gpu_cfg)):
        k = cfg.local.kubernetes
        for name, e in [(n, k.engine(n)) for n in ("vllm", "sglang", "qwen7b", "structured")]:
            if name not in {d["metadata"]["name"] for d in docs_of(rendered, "Deployment")}:
                continue
            dep = find(rendered, "Deployment", name)
            c = dep["spec"]["template"]["spec"]["containers"][0]
            assert c["resources"]["limits"]["nvidia.com/gpu"] == e.gpus
            assert c["resources"]["requests"]["nvidia.com/gpu"] == e.gpus
            assert dep["spec"]["replicas"] == e.replicas
    qwen_pod = find(gpu, "Deployment", "qwen7b")["spec"]["template"]["spec"]
    assert qwen_pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L40S"}
    qwen = qwen_pod["containers"][0]
    assert qwen["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert arg(qwen, "--tensor-parallel-size") == "2"


def test_engine_flags_come_from_config(prod, prod_cfg) -> None:
    k = prod_cfg.local.kubernetes
    vllm = find(prod, "Deployment", "vllm")["spec"]["template"]["spec"]["containers"][0]
    assert arg(vllm, "--max-num-batched-tokens") == str(k.engine("vllm").max_num_batched_tokens)
    assert arg(vllm, "--gpu-memory-utilization") == str(k.engine("vllm").gpu_memory_utilization)
    assert arg(vllm, "--model") == k.engine("vllm").model
    assert arg(vllm, "--max-model-len") == "8192"
    assert arg(vllm, "--quantization") == "awq"
    # The public model's upstream name (local.vllm_model) is what vLLM serves.
    i = vllm["args"].index("--served-model-name")
    assert vllm["args"][i + 1] == prod_cfg.local.vllm_model
    sglang = find(prod, "Deployment", "sglang")["spec"]["template"]["spec"]["containers"][0]
    assert arg(sglang, "--chunked-prefill-size") == str(k.engine("sglang").max_num_batched_tokens)
    assert arg(sglang, "--mem-fraction-static") == str(k.engine("sglang").gpu_memory_utilization)
    assert arg(sglang, "--tp-size") == "1"


def test_changing_config_changes_flags() -> None:
    cfg = with_k8s("prod", engines__vllm__max_num_batched_tokens=4096, engines__vllm__gpu_memory_utilization=0.7)
    c = find(render(cfg), "Deployment", "vllm")["spec"]["template"]["spec"]["containers"][0]
    assert arg(c, "--max-num-batched-tokens") == "4096"
    assert arg(c, "--gpu-memory-utilization") == "0.7"


def test_multi_node_engine_is_a_leader_worker_set_on_ray(gpu, gpu_cfg) -> None:
    k = gpu_cfg.local.kubernetes
    e = k.engine("llama70b")
    lws = find(gpu, "LeaderWorkerSet", "llama70b")
    t = lws["spec"]["leaderWorkerTemplate"]
    assert t["size"] == e.gpus // k.gpu_nodes.gpus_per_node == 2
    assert t["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert lws["spec"]["startupPolicy"] == "LeaderCreated"
    head = t["leaderTemplate"]["spec"]["containers"][0]
    worker = t["workerTemplate"]["spec"]["containers"][0]
    for c in (head, worker):
        assert c["resources"]["limits"]["nvidia.com/gpu"] == k.gpu_nodes.gpus_per_node
    assert arg(head, "--tensor-parallel-size") == "8"
    assert arg(head, "--pipeline-parallel-size") == "2"
    assert "--distributed-executor-backend=ray" in head["args"]
    assert "ray start --head" in head["command"][2]
    assert 'ray start --address="$LWS_LEADER_ADDRESS:6379" --block' in worker["command"][2]
    assert "args" not in worker  # workers run no server
    # Only the head serves: the Service selects it alone.
    svc = find(gpu, "Service", "llama70b")
    assert svc["spec"]["selector"][r.ROLE_LABEL] == "head"
    assert t["leaderTemplate"]["metadata"]["labels"][r.ROLE_LABEL] == "head"
    # Pipeline parallel back to one node: a plain Deployment again.
    one = render(with_k8s("onprem-gpu", engines__llama70b__pipeline_parallel_size=1))
    assert not docs_of(one, "LeaderWorkerSet")
    assert (
        find(one, "Deployment", "llama70b")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
            "nvidia.com/gpu"
        ]
        == 8
    )


def test_gpu_placement_and_probes(gpu, gpu_cfg) -> None:
    k = gpu_cfg.local.kubernetes
    for name, tpl in pod_templates(gpu):
        spec = tpl["spec"]
        c = spec["containers"][0]
        if name == "gateway":
            assert "nodeSelector" not in spec
            assert c["readinessProbe"]["httpGet"]["path"] == "/health"
            continue
        want = k.engine(name.split("/")[0]).node_selector or k.gpu_nodes.node_selector
        assert spec["nodeSelector"] == want
        assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert c["livenessProbe"] and c["readinessProbe"]
        if name.endswith("/worker"):
            assert "ray health-check" in c["livenessProbe"]["exec"]["command"][2]
            continue
        engine = name.split("/")[0]
        assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] == k.engine(engine).startup_timeout_s


def test_model_cache_is_a_read_only_claim(gpu, gpu_cfg) -> None:
    claims = {d["metadata"]["name"]: d for d in docs_of(gpu, "PersistentVolumeClaim")}
    assert claims["qwen7b-model-cache"]["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "40Gi"}},
        "storageClassName": "cephfs",
    }
    assert "llama-3-3-70b-weights" not in claims  # existing_claim: referenced, not created
    for name, tpl in pod_templates(gpu):
        if name == "gateway":
            continue
        vols = {v["name"]: v for v in tpl["spec"]["volumes"]}
        want = gpu_cfg.local.kubernetes.engine(name.split("/")[0]).model_cache.existing_claim
        claim = vols["model-cache"]["persistentVolumeClaim"]
        assert claim["claimName"] == (want or f"{name.split('/')[0]}-model-cache")
        assert claim["readOnly"] is True
        mount = next(m for m in tpl["spec"]["containers"][0]["volumeMounts"] if m["name"] == "model-cache")
        assert mount == {"name": "model-cache", "mountPath": "/models", "readOnly": True}


def test_every_pod_is_non_root_and_read_only(prod, gpu) -> None:
    for rendered in (prod, gpu):
        for name, tpl in pod_templates(rendered):
            spec = tpl["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            assert spec["securityContext"]["runAsUser"] >= 10000, name
            assert spec["automountServiceAccountToken"] is False, name
            for key in ("hostNetwork", "hostIPC", "hostPID"):
                assert not spec.get(key), (name, key)
            for c in spec["containers"]:
                sc = c["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, name
                assert sc["allowPrivilegeEscalation"] is False, name
                assert sc["capabilities"] == {"drop": ["ALL"]}, name
                assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"], name
                assert c["imagePullPolicy"] == "Always"


def test_secrets_are_referenced_as_files_never_inlined(prod, prod_cfg, gpu) -> None:
    for rendered in (prod, gpu):
        assert not docs_of(rendered, "Secret")
        for name, tpl in pod_templates(rendered):
            for c in tpl["spec"]["containers"]:
                for env in c.get("env", []):
                    assert "valueFrom" not in env, (name, env)
                    assert "KEY" not in env["name"], (name, env)
    gw = find(prod, "Deployment", "gateway")["spec"]["template"]["spec"]
    secrets = {v["secret"]["secretName"]: v["secret"] for v in gw["volumes"] if "secret" in v}
    g = prod_cfg.local.kubernetes.gateway
    assert secrets[g.api_key_secret]["items"] == [{"key": g.api_key_secret_key, "path": "api_keys"}]
    assert secrets[prod_cfg.local.kubernetes.engine_api_key_secret]["items"] == [
        {"key": "VLLM_API_KEY", "path": "VLLM_API_KEY"}
    ]


def test_gateway_config_points_at_the_services(prod, prod_cfg) -> None:
    cm = find(prod, "ConfigMap", "gateway-config")
    data = yaml.safe_load(cm["data"]["prod.yaml"])
    # Only what the gateway reads: no cloud settings (alarm addresses, VPC, scaling) in the cluster.
    assert set(data) == {"environment", "model", "endpoint", "local"} and data["endpoint"] == {"enabled": False}
    assert "ml-oncall@" not in cm["data"]["prod.yaml"] and "kubernetes" not in data["local"]
    assert dump([cm]).count("prod.yaml: |") == 1  # a literal block: reads like the file
    cfg = parse_config(data, "configmap")
    ns = prod_cfg.local.kubernetes.namespace
    engines = {e.name: e for e in cfg.local.resolved_engines()}
    assert set(engines) == {"vllm", "sglang"}  # ollama is not in the cluster
    assert engines["vllm"].base_url == f"http://vllm.{ns}.svc.cluster.local:8000"
    assert engines["sglang"].base_url == f"http://sglang.{ns}.svc.cluster.local:30000"
    assert engines["sglang"].roles == ["structured"]
    assert engines["vllm"].api_key_env == "VLLM_API_KEY"
    assert cfg.local.api_keys_file == f"{r.GATEWAY_SECRETS}/api_keys"
    assert cfg.local.rate_limit == prod_cfg.local.rate_limit
    for e in engines.values():
        svc = find(prod, "Service", e.name)
        assert svc["spec"]["ports"][0]["port"] == int(e.base_url.rsplit(":", 1)[1])
    # The gateway mounts exactly this file where load_config looks for it.
    mounts = find(prod, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "config", "mountPath": "/app/config/prod.yaml", "subPath": "prod.yaml"} in mounts


def test_gateway_hpa_and_pdbs(prod, prod_cfg, gpu) -> None:
    g = prod_cfg.local.kubernetes.gateway
    hpa = find(prod, "HorizontalPodAutoscaler", "gateway")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (g.min_replicas, g.max_replicas)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == g.target_cpu_utilization
    for rendered in (prod, gpu):
        pdbs = {d["metadata"]["name"]: d for d in docs_of(rendered, "PodDisruptionBudget")}
        for name, tpl in pod_templates(rendered):
            pdb = pdbs[name.split("/")[0]]
            sel = pdb["spec"]["selector"]["matchLabels"]
            assert sel.items() <= tpl["metadata"]["labels"].items()
            assert pdb["spec"]["maxUnavailable"] == 1


def test_services_select_their_pods_and_are_monitored(gpu) -> None:
    templates = dict(pod_templates(gpu))
    sm = docs_of(gpu, "ServiceMonitor")[0]["spec"]
    for svc in docs_of(gpu, "Service"):
        name = svc["metadata"]["name"]
        tpl = templates.get(name) or templates[f"{name}/leader"]
        assert svc["spec"]["selector"].items() <= tpl["metadata"]["labels"].items()
        port = svc["spec"]["ports"][0]
        assert port["targetPort"] in {p["name"] for p in tpl["spec"]["containers"][0]["ports"]}
        assert sm["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["endpoints"][0]["port"] == "http" and sm["endpoints"][0]["path"] == "/metrics"
    assert docs_of(gpu, "ServiceMonitor")[0]["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def _ingress_peers(rendered: Rendered, pod_labels: dict[str, str]) -> list[Doc]:
    peers = []
    for p in docs_of(rendered, "NetworkPolicy"):
        sel = p["spec"]["podSelector"].get("matchLabels", {})
        if sel.items() <= pod_labels.items():
            for rule in p["spec"].get("ingress", []):
                peers += rule["from"]
    return peers


def test_only_the_gateway_reaches_engines(gpu, gpu_cfg) -> None:
    k = gpu_cfg.local.kubernetes
    deny = find(gpu, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    gateway = {"podSelector": {"matchLabels": r.selector(gpu_cfg, "gateway")}}
    monitoring = r.namespaces_peer([k.monitoring_namespace])
    for name, tpl in pod_templates(gpu):
        engine = name.split("/")[0]
        peers = _ingress_peers(gpu, tpl["metadata"]["labels"])
        if engine == "gateway":
            assert peers == [r.namespaces_peer(k.gateway.allowed_namespaces), monitoring]
            continue
        allowed = [gateway, monitoring]
        if k.engine(engine).gpus > k.gpu_nodes.gpus_per_node:
            allowed.append({"podSelector": {"matchLabels": r.selector(gpu_cfg, engine)}})  # Ray inside the group
        assert peers == allowed, name
    no_scrape = render(with_k8s("onprem-gpu", scrape_engines=False))
    for name, tpl in pod_templates(no_scrape):
        if not name.startswith("gateway"):
            assert monitoring not in _ingress_peers(no_scrape, tpl["metadata"]["labels"])


def test_namespace_enforces_restricted_pod_security(prod, prod_cfg) -> None:
    ns = find(prod, "Namespace", prod_cfg.local.kubernetes.namespace)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] == "v1.33"
    assert all(d["metadata"].get("namespace", ns["metadata"]["name"]) == "llm-prod" for d in prod.docs())


def test_write_is_atomic(prod: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "prod"
    files = write(prod, out)
    before = {f.name: f.read_text() for f in out.iterdir()}
    assert {f.name for f in files} == set(before) and "kustomization.yaml" in before
    calls = {"n": 0}
    real = r.dump

    def fail_on_third(docs: list[Doc]) -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(docs)

    monkeypatch.setattr(r, "dump", fail_on_third)
    with pytest.raises(OSError, match="disk full"):
        write(prod, out)
    assert {f.name: f.read_text() for f in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["prod"]  # no temp folder left behind


def _scripts(rendered: Rendered) -> list[tuple[str, Doc]]:
    return [(name, c) for name, tpl in pod_templates(rendered) for c in tpl["spec"]["containers"] if "command" in c]


def test_entrypoint_scripts_parse(prod, gpu) -> None:
    for name, c in _scripts(prod) + _scripts(gpu):
        assert c["command"][:2] == ["/bin/sh", "-c"]
        subprocess.run(["/bin/sh", "-n", "-c", c["command"][2]], check=True), name


def test_engine_script_passes_the_key_in_the_environment_not_argv(prod, tmp_path: Path) -> None:
    """Run the rendered vLLM entrypoint with a stand-in python3 that reports what it received."""
    c = find(prod, "Deployment", "vllm")["spec"]["template"]["spec"]["containers"][0]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "VLLM_API_KEY").write_text("sk-engine-test")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "python3"
    stub.write_text('#!/bin/sh\necho "KEY=$VLLM_API_KEY"\nfor a in "$@"; do echo "ARG=$a"; done\n')
    stub.chmod(0o755)
    script = c["command"][2].replace(r.ENGINE_SECRETS, str(secrets))
    out = subprocess.run(
        ["/bin/sh", "-c", script, *c["command"][3:], *c["args"]],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    ).stdout.splitlines()
    assert out[0] == "KEY=sk-engine-test"
    argv = [line.removeprefix("ARG=") for line in out[1:]]
    assert argv == ["-m", "vllm.entrypoints.openai.api_server", *c["args"]]
    assert not any("sk-engine-test" in a for a in argv)
    # A missing key file stops the container instead of starting an engine without its key.
    script_missing = c["command"][2].replace(r.ENGINE_SECRETS, str(tmp_path / "nowhere"))
    proc = subprocess.run(
        ["/bin/sh", "-c", script_missing, "vllm"],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert proc.returncode != 0 and "KEY=" not in proc.stdout


def test_networks_outside_the_cluster_are_named_with_their_reason() -> None:
    cfg = with_k8s(
        "onprem-gpu",
        gateway__allowed_cidrs=[{"cidr": "10.30.0.0/16", "why": "hybrid router in the AWS VPC, over the VPN"}],
        gateway__egress=[{"cidr": "10.30.0.0/16", "port": 443, "why": "sagemaker.runtime interface endpoint"}],
    )
    policy = find(render(cfg), "NetworkPolicy", "gateway")
    assert {"from": [{"ipBlock": {"cidr": "10.30.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 8080}]} in policy[
        "spec"
    ]["ingress"]
    assert {"to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 443}]} in policy[
        "spec"
    ]["egress"]
    assert "sagemaker.runtime interface endpoint" in policy["metadata"]["annotations"][r.REASONS_ANNOTATION]
    # Without them, nothing outside the cluster is reachable either way.
    plain = find(render(with_k8s("onprem-gpu")), "NetworkPolicy", "gateway")
    assert "ipBlock" not in str(plain) and "annotations" not in plain["metadata"]


@pytest.mark.parametrize(
    ("rules", "needle"),
    [
        ({"gateway__egress": [{"cidr": "0.0.0.0/0", "port": 443, "why": "anything"}]}, "is the whole internet"),
        ({"gateway__allowed_cidrs": [{"cidr": "10.30.0.1/16", "why": "router"}]}, "has host bits set"),
        ({"gateway__allowed_cidrs": [{"cidr": "10.30.0.0/16"}]}, "why"),
    ],
)
def test_bad_network_rules_are_refused(rules: dict[str, Any], needle: str) -> None:
    from config import ConfigError

    with pytest.raises(ConfigError, match=needle):
        with_k8s("prod", **rules)


def _stub_bin(tmp_path: Path, alive_after: int) -> Path:
    """Stand-ins for ``ray`` (logs its arguments) and ``python3``: with ``-c`` it answers the number of alive Ray
    nodes, one more per call up to ``alive_after``; with ``-m`` it logs what vLLM would have been started with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ray").write_text(f'#!/bin/sh\necho "ray $*" >> {tmp_path}/calls\n')
    (bin_dir / "python3").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-c" ]; then\n'
        f"  n=$(cat {tmp_path}/count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {tmp_path}/count\n"
        f"  if [ $n -gt {alive_after} ]; then echo {alive_after}; else echo $n; fi\n"
        "else\n"
        f'  echo "exec $*" >> {tmp_path}/calls\n'
        "fi\n"
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def _run_head(gpu: Rendered, tmp_path: Path, alive_after: int, group: int) -> subprocess.CompletedProcess[str]:
    lws = find(gpu, "LeaderWorkerSet", "llama70b")
    c = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "VLLM_API_KEY").write_text("sk-k")
    # Same script, faster clock: poll without sleeping and give up after 3 polls instead of 600 s.
    script = c["command"][2].replace(r.ENGINE_SECRETS, str(secrets)).replace("sleep 5", "true")
    script = script.replace(f"-ge {r.scripts.RAY_JOIN_TIMEOUT_S}", "-ge 15")
    return subprocess.run(
        ["/bin/sh", "-c", script, *c["command"][3:], *c["args"]],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{_stub_bin(tmp_path, alive_after)}:{os.environ['PATH']}", "LWS_GROUP_SIZE": str(group)},
    )


def test_ray_head_waits_for_the_whole_group_then_starts_vllm(gpu: Rendered, tmp_path: Path) -> None:
    proc = _run_head(gpu, tmp_path, alive_after=2, group=2)
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].startswith("ray start --head --port=6379")
    assert calls[1].startswith("exec -m vllm.entrypoints.openai.api_server --model=/models/Llama-3.3-70B-Instruct")
    assert "--distributed-executor-backend=ray" in calls[1]
    assert int((tmp_path / "count").read_text()) == 2  # polled until both nodes were alive


def test_ray_head_gives_up_when_workers_do_not_join(gpu: Rendered, tmp_path: Path) -> None:
    proc = _run_head(gpu, tmp_path, alive_after=1, group=2)
    assert proc.returncode == 1
    assert "ray: only some of 2 nodes joined" in proc.stderr
    assert not any(line.startswith("exec") for line in (tmp_path / "calls").read_text().splitlines())


def test_ray_worker_joins_the_leader(gpu: Rendered, tmp_path: Path) -> None:
    lws = find(gpu, "LeaderWorkerSet", "llama70b")
    c = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    env = {"PATH": f"{_stub_bin(tmp_path, 1)}:{os.environ['PATH']}", "LWS_LEADER_ADDRESS": "llama70b-0.llama70b"}
    subprocess.run(["/bin/sh", "-c", c["command"][2]], check=True, env=env)
    assert (tmp_path / "calls").read_text().splitlines() == [
        "ray start --address=llama70b-0.llama70b:6379 --block --disable-usage-stats"
    ]


def test_serving_pods_drain_before_stopping(gpu: Rendered) -> None:
    for name, tpl in pod_templates(gpu):
        c = tpl["spec"]["containers"][0]
        if name.endswith("/worker"):
            assert "lifecycle" not in c  # a Ray worker serves nothing itself
            continue
        assert c["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", str(r.PRE_STOP_S)]}}}
        assert tpl["spec"].get("terminationGracePeriodSeconds", 30) > r.PRE_STOP_S


def test_the_hybrid_private_path_reaches_the_gateway_and_its_aws_endpoints(prod, prod_cfg, gpu) -> None:
    """prod has network.mode create: the VPC's network both ways, and the endpoint variables required."""
    net = prod_cfg.network
    policy = find(prod, "NetworkPolicy", "gateway")["spec"]
    block = {"ipBlock": {"cidr": net.cidr}}
    assert {"from": [block], "ports": [{"protocol": "TCP", "port": 8080}]} in policy["ingress"]
    assert {"to": [block], "ports": [{"protocol": "TCP", "port": 443}]} in policy["egress"]
    why = find(prod, "NetworkPolicy", "gateway")["metadata"]["annotations"][r.REASONS_ANNOTATION]
    assert "hybrid router Lambda" in why and "sagemaker_runtime" in why
    c = find(prod, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert c["envFrom"] == [{"configMapRef": {"name": r.AWS_PRIVATE_CONFIGMAP, "optional": False}}]
    assert {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"} in c["env"]
    # Engines never get the AWS path: their only egress is DNS.
    assert find(prod, "NetworkPolicy", "engine-vllm")["spec"]["egress"] == []
    # Without a private path (the multi-GPU example), none of it.
    g = find(gpu, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert "envFrom" not in g and "ipBlock" not in str(find(gpu, "NetworkPolicy", "gateway"))
