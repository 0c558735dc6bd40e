"""Run checkov's Kubernetes checks over a render folder (checkov lives in ``.venv-checkov``, never imported here).

checkov only looks inside the pod templates of built-in workload kinds, so the pod templates of a LeaderWorkerSet
are also written out as ``Pod`` documents (carrying the LeaderWorkerSet's ``checkov.io/skip`` annotations) into the
scanned copy: they get exactly the same container checks as a Deployment's pods.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from local.k8s.crd_schemas import POD_TEMPLATE_PATHS
from local.k8s.validate import NOT_RESOURCES, load_dir

CHECKOV = Path(__file__).resolve().parents[2] / ".venv-checkov" / "bin" / "checkov"
TIMEOUT_S = 600


@dataclass
class ScanResult:
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (check id, resource, reason)


def pods_of_custom_resources(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ``v1/Pod`` per pod template of each custom resource, named ``<name>-<template>``."""
    pods = []
    for doc in docs:
        for path in POD_TEMPLATE_PATHS.get(doc.get("kind", ""), []):
            node: Any = doc
            for p in path:
                node = node.get(p, {})
            if not node:
                continue
            m = doc["metadata"]
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{m['name']}-{path[-1].removesuffix('Template').lower()}",
                        "namespace": m.get("namespace"),
                        "labels": node.get("metadata", {}).get("labels", {}),
                        "annotations": dict(m.get("annotations", {})),
                    },
                    "spec": node["spec"],
                }
            )
    return pods


def scan(folder: Path, checkov: Path = CHECKOV) -> ScanResult:
    """checkov ``--framework kubernetes`` over ``folder`` (plus the custom resources' pods).

    Raises:
        FileNotFoundError: checkov is not installed (``make checkov-setup``).
        RuntimeError: checkov crashed or printed no JSON report.
    """
    if not checkov.is_file():
        raise FileNotFoundError(f"{checkov}: not installed; run `make checkov-setup`")
    with tempfile.TemporaryDirectory(prefix="k8s-scan-") as tmp:
        work = Path(tmp)
        for f in folder.glob("*.yaml"):
            if f.name not in NOT_RESOURCES:
                shutil.copy(f, work / f.name)
        pods = pods_of_custom_resources([d for _, d in load_dir(folder)])
        if pods:
            (work / "_custom-resource-pods.yaml").write_text(yaml.safe_dump_all(pods, sort_keys=False))
        proc = subprocess.run(
            [str(checkov), "-d", str(work), "--framework", "kubernetes", "-o", "json", "--compact", "--skip-download"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            # --skip-download and a bare environment: checkov must not reach its vendor's API (no network here).
            env={"PATH": "/usr/bin:/bin", "HOME": tmp},
        )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {proc.returncode}: {proc.stderr[-2000:]}")
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"checkov printed no JSON report: {proc.stdout[-500:]} {proc.stderr[-2000:]}") from None
    reports = report if isinstance(report, list) else [report]
    out = ScanResult()
    for r in reports:
        results = r.get("results", {})
        out.passed += len(results.get("passed_checks", []))
        for c in results.get("failed_checks", []):
            out.failed.append(f"{c['check_id']} {c['check_name']} ({c['resource']}, {Path(c['file_path']).name})")
        for c in results.get("skipped_checks", []):
            out.skipped.append(
                (c["check_id"], c["resource"], (c.get("check_result") or {}).get("suppress_comment", ""))
            )
    return out
