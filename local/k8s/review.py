"""The ops review page for a render folder: what runs where, allowed traffic, resource totals, secrets, findings
and what changed since the last review. Read from the rendered manifests (what would be applied), not the config.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from config.atomic import atomic_dir
from config.kubernetes_section import cpu_cores, memory_gib
from config.local_section import RateLimitSpec
from local.k8s.crd_schemas import POD_TEMPLATE_PATHS
from local.k8s.render import REASONS_ANNOTATION
from local.k8s.scan import ScanResult
from local.k8s.validate import load_dir

Doc = dict[str, Any]
WORKLOADS = {"Deployment", "LeaderWorkerSet"}


def _pod_templates(doc: Doc) -> list[tuple[str, Doc, int]]:
    """(role, pod template, pods per replica) of a workload."""
    if doc["kind"] == "Deployment":
        return [("pod", doc["spec"]["template"], 1)]
    size = doc["spec"]["leaderWorkerTemplate"]["size"]
    out = []
    for path in POD_TEMPLATE_PATHS[doc["kind"]]:
        node: Any = doc
        for p in path:
            node = node[p]
        role = path[-1].removesuffix("Template")
        out.append((role, node, 1 if role == "leader" else size - 1))
    return out


def _gpus(container: Doc) -> int:
    return sum(int(v) for k, v in container["resources"]["limits"].items() if k.endswith("/gpu"))


def _hpa_max(docs: list[Doc], name: str) -> int | None:
    for d in docs:
        if d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] == name:
            return int(d["spec"]["maxReplicas"])
    return None


def workloads_table(docs: list[Doc]) -> tuple[list[str], dict[str, float]]:
    """Markdown rows per workload role and totals (at the configured replicas and at the HPA maximum)."""
    rows = [
        "| workload | kind | replicas | role | pods | node selector | GPUs/pod | CPU req/limit | memory req/limit | image |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    totals = {"gpus": 0.0, "cpu": 0.0, "memory_gib": 0.0, "pods": 0.0, "cpu_max": 0.0, "memory_gib_max": 0.0}
    for d in docs:
        if d["kind"] not in WORKLOADS:
            continue
        name = d["metadata"]["name"]
        replicas = int(d["spec"].get("replicas", 1))
        hpa_max = _hpa_max(docs, name) or replicas
        shown = f"{replicas}" if hpa_max == replicas else f"{replicas}-{hpa_max} (HPA)"
        for role, tpl, per_replica in _pod_templates(d):
            spec = tpl["spec"]
            c = spec["containers"][0]
            req, lim = c["resources"]["requests"], c["resources"]["limits"]
            gpus = _gpus(c)
            pods = replicas * per_replica
            sel = ", ".join(f"{k}={v}" for k, v in spec.get("nodeSelector", {}).items()) or "any node"
            rows.append(
                f"| {name} | {d['kind']} | {shown} | {role} | {pods} | {sel} | {gpus or '-'} | "
                f"{req['cpu']} / {lim['cpu']} | {req['memory']} / {lim['memory']} | `{c['image']}` |"
            )
            totals["pods"] += pods
            totals["gpus"] += pods * gpus
            totals["cpu"] += pods * cpu_cores(str(req["cpu"]))
            totals["memory_gib"] += pods * memory_gib(str(req["memory"]))
            totals["cpu_max"] += hpa_max * per_replica * cpu_cores(str(req["cpu"]))
            totals["memory_gib_max"] += hpa_max * per_replica * memory_gib(str(req["memory"]))
    return rows, totals


ENGINE_FLAGS = {
    # column: (vLLM flag, SGLang flag)
    "model": ("--model", "--model-path"),
    "TP": ("--tensor-parallel-size", "--tp-size"),
    "PP": ("--pipeline-parallel-size", "--pp-size"),
    "batched tokens": ("--max-num-batched-tokens", "--chunked-prefill-size"),
    "GPU memory share": ("--gpu-memory-utilization", "--mem-fraction-static"),
    "max model len": ("--max-model-len", "--context-length"),
}


def engines_table(docs: list[Doc]) -> list[str]:
    """The serving flags each engine runs with, read from its container's arguments."""
    rows = [
        "| engine | kind | pods per copy | " + " | ".join(ENGINE_FLAGS) + " |",
        "|---" * (3 + len(ENGINE_FLAGS)) + "|",
    ]
    for d in docs:
        if d["kind"] not in WORKLOADS or d["metadata"]["labels"].get("app.kubernetes.io/component") != "engine":
            continue
        _, tpl, _ = _pod_templates(d)[0]
        c = tpl["spec"]["containers"][0]
        args = dict(a.split("=", 1) for a in c.get("args", []) if "=" in a)
        col = 0 if c["name"] == "vllm" else 1
        per_copy = d["spec"]["leaderWorkerTemplate"]["size"] if d["kind"] == "LeaderWorkerSet" else 1
        cells = [args.get(flags[col], "-") for flags in ENGINE_FLAGS.values()]
        rows.append(f"| {d['metadata']['name']} | {c['name']} | {per_copy} | " + " | ".join(cells) + " |")
    return rows


def rate_limit_lines(docs: list[Doc]) -> list[str]:
    """The per-key rate limit is per gateway replica: what it adds up to at the HPA's bounds."""
    cm = next((d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "gateway-config"), None)
    hpa = next((d for d in docs if d["kind"] == "HorizontalPodAutoscaler"), None)
    if cm is None or hpa is None:
        return []
    (text,) = cm["data"].values()
    local = (yaml.safe_load(text) or {}).get("local", {})
    rate = float(local.get("rate_limit", {}).get("per_key_per_s", RateLimitSpec().per_key_per_s))
    lo, hi = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    return [
        f"Per-key rate limit: {rate:g} requests/s per gateway replica, so {rate * lo:g}-{rate * hi:g} requests/s "
        f"per key across {lo}-{hi} replicas (limits and breakers are per process)."
    ]


def _peer(peer: Doc, namespace: str) -> str:
    if "ipBlock" in peer:
        return f"network {peer['ipBlock']['cidr']} (outside the cluster)"
    parts = []
    ns = peer.get("namespaceSelector")
    if ns is not None:
        exprs = ns.get("matchExpressions", [])
        names = [v for e in exprs for v in e.get("values", [])]
        parts.append(f"namespaces {', '.join(names)}" if names else "any namespace")
    pods = peer.get("podSelector")
    if pods is not None:
        labels = pods.get("matchLabels", {})
        who = labels.get("app.kubernetes.io/name") or ", ".join(f"{k}={v}" for k, v in labels.items()) or "all pods"
        parts.append(f"pods {who}" + ("" if ns is not None else f" in {namespace}"))
    return " / ".join(parts) or "anywhere"


def _ports(rule: Doc) -> str:
    ports = rule.get("ports")
    if not ports:
        return "all ports"
    return ", ".join(f"{p.get('protocol', 'TCP')}/{p['port']}" for p in ports)


def traffic_lines(docs: list[Doc]) -> list[str]:
    """Every allowed flow, as ``from -> to : ports`` (NetworkPolicies are allow-lists over a default deny)."""
    rows = ["| from | to | ports | policy |", "|---|---|---|---|"]
    deny = False
    for d in docs:
        if d["kind"] != "NetworkPolicy":
            continue
        ns = d["metadata"]["namespace"]
        spec = d["spec"]
        target_labels = spec["podSelector"].get("matchLabels", {})
        target = f"pods {target_labels.get('app.kubernetes.io/name', '?')}" if target_labels else f"every pod in {ns}"
        if not spec.get("ingress") and not spec.get("egress") and set(spec["policyTypes"]) == {"Ingress", "Egress"}:
            deny = True
            continue
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                rows.append(f"| {_peer(peer, ns)} | {target} | {_ports(rule)} | {d['metadata']['name']} |")
        for rule in spec.get("egress", []):
            for peer in rule.get("to", []):
                rows.append(f"| {target} | {_peer(peer, ns)} | {_ports(rule)} | {d['metadata']['name']} |")
    head = ["Everything not listed is denied (default-deny policy on every pod)." if deny else "**No default deny.**"]
    reasons = [
        f"- {d['metadata']['name']}: {d['metadata']['annotations'][REASONS_ANNOTATION]}"
        for d in docs
        if d["kind"] == "NetworkPolicy" and REASONS_ANNOTATION in d["metadata"].get("annotations", {})
    ]
    return [*head, "", *rows, *(["", "Why each network outside the cluster is allowed:", *reasons] if reasons else [])]


def secrets_lines(docs: list[Doc]) -> list[str]:
    """Secrets the workloads mount (never rendered: create them yourself)."""
    uses: dict[str, set[str]] = {}
    keys: dict[str, set[str]] = {}
    for d in docs:
        if d["kind"] not in WORKLOADS:
            continue
        for _, tpl, _ in _pod_templates(d):
            for v in tpl["spec"].get("volumes", []):
                s = v.get("secret")
                if s:
                    uses.setdefault(s["secretName"], set()).add(d["metadata"]["name"])
                    keys.setdefault(s["secretName"], set()).update(i["key"] for i in s.get("items", []))
    rows = ["| kind | name | keys | used by |", "|---|---|---|---|"]
    rows += [
        f"| Secret (files) | {n} | {', '.join(sorted(keys[n]))} | {', '.join(sorted(uses[n]))} |" for n in sorted(uses)
    ]
    rendered = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    for d in docs:
        if d["kind"] not in WORKLOADS:
            continue
        for _, tpl, _ in _pod_templates(d):
            for c in tpl["spec"]["containers"]:
                for ref in c.get("envFrom", []):
                    name = ref.get("configMapRef", {}).get("name")
                    if name and name not in rendered:
                        rows.append(
                            f"| ConfigMap (environment) | {name} | AWS_ENDPOINT_URL_* from `make onprem-env` | "
                            f"{d['metadata']['name']} |"
                        )
    return rows


def storage_lines(docs: list[Doc]) -> tuple[list[str], float]:
    rows = ["| claim | access | size | storage class |", "|---|---|---|---|"]
    total = 0.0
    for d in docs:
        if d["kind"] == "PersistentVolumeClaim":
            size = d["spec"]["resources"]["requests"]["storage"]
            total += memory_gib(size)
            rows.append(
                f"| {d['metadata']['name']} | {', '.join(d['spec']['accessModes'])} | {size} | "
                f"{d['spec'].get('storageClassName', '(cluster default)')} |"
            )
    claimed = {
        v["persistentVolumeClaim"]["claimName"]
        for d in docs
        if d["kind"] in WORKLOADS
        for _, tpl, _ in _pod_templates(d)
        for v in tpl["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    rendered = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    rows += [f"| {c} | existing (not rendered) | - | - |" for c in sorted(claimed - rendered)]
    return rows, total


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(node, list):
        out = {}
        for i, v in enumerate(node):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: node}


def _key(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def changes(old: Iterable[Doc] | None, new: Iterable[Doc], limit: int = 12) -> list[str]:
    """Added / removed resources and changed fields (old -> new) per resource."""
    if old is None:
        return ["(no previous review: everything is new)"]
    o = {_key(d): _flatten(d) for d in old}
    n = {_key(d): _flatten(d) for d in new}
    lines = [f"+ {k}" for k in sorted(n.keys() - o.keys())]
    lines += [f"- {k}" for k in sorted(o.keys() - n.keys())]
    for k in sorted(o.keys() & n.keys()):
        diff = sorted(p for p in o[k].keys() | n[k].keys() if o[k].get(p) != n[k].get(p))
        if diff:
            lines.append(f"~ {k}")
            lines += [f"    {p}: {o[k].get(p)!r} -> {n[k].get(p)!r}" for p in diff[:limit]]
            if len(diff) > limit:
                lines.append(f"    ... and {len(diff) - limit} more")
    return lines or ["(no changes)"]


def build_review(
    env: str,
    folder: Path,
    previous: Path | None,
    version: str,
    problems: list[str],
    scan: ScanResult | None,
    left_out: list[str],
) -> str:
    """The Markdown page for one render folder."""
    docs = [d for _, d in load_dir(folder)]
    old = [d for _, d in load_dir(previous)] if previous and previous.is_dir() else None
    ns = next((d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]), "?")
    rows, t = workloads_table(docs)
    storage, storage_gib = storage_lines(docs)
    out = [
        f"# Kubernetes review: {env}",
        "",
        f"Rendered from `config/{env}.yaml` into `{folder}` (namespace `{ns}`); apply with `kubectl apply -k {folder}`.",
        "",
        "## Validation",
        "",
        f"- Kubernetes {version} OpenAPI schemas (kubernetes-validate, strict) and our LeaderWorkerSet/ServiceMonitor "
        f"schemas: {'**' + str(len(problems)) + ' problem(s)**' if problems else 'all ' + str(len(docs)) + ' documents valid'}",
    ]
    out += [f"  - {p}" for p in problems]
    if scan is None:
        out.append("- checkov: not run (`make checkov-setup`, then `make k8s-review` again)")
    else:
        out.append(
            f"- checkov (Kubernetes): {scan.passed} passed, {len(scan.failed)} failed, {len(scan.skipped)} acknowledged"
        )
        out += [f"  - FAILED {f}" for f in scan.failed]
        out += ["", "| acknowledged check | resource | reason |", "|---|---|---|"]
        out += [f"| {c} | {r} | {why} |" for c, r, why in scan.skipped]
    out += [
        "",
        "## What runs where",
        "",
        *rows,
        "",
        *engines_table(docs),
        "",
        *rate_limit_lines(docs),
        "",
        "Engines are reached only through the gateway's Services (below); each serves weights from its model cache, "
        "mounted read-only, with no hub access.",
    ]
    if left_out:
        out += [
            "",
            f"Not in the cluster (local engines of other kinds, dropped from the gateway's config here): "
            f"{', '.join(left_out)}.",
        ]
    out += [
        "",
        "## Resource totals (requests)",
        "",
        "| | at configured replicas | at HPA maximum |",
        "|---|---|---|",
        f"| pods | {t['pods']:g} | - |",
        f"| GPUs | {t['gpus']:g} | {t['gpus']:g} |",
        f"| CPU cores | {t['cpu']:g} | {t['cpu_max']:g} |",
        f"| memory GiB | {t['memory_gib']:g} | {t['memory_gib_max']:g} |",
        f"| model cache GiB (rendered claims) | {storage_gib:g} | {storage_gib:g} |",
        "",
        *storage,
        "",
        "## Allowed traffic",
        "",
        *traffic_lines(docs),
        "",
        "## Secrets and ConfigMaps to create before applying (referenced, never rendered)",
        "",
        *secrets_lines(docs),
        "",
        "## Changes since the previous review",
        "",
        "```",
        *changes(old, docs),
        "```",
        "",
    ]
    return "\n".join(out)


def keep_as_previous(folder: Path, previous: Path) -> None:
    """Store this render as the baseline of the next review (atomically: the old baseline stays until it is done)."""
    with atomic_dir(previous) as tmp:
        for f in folder.iterdir():
            shutil.copy2(f, tmp / f.name)
