"""Real vLLM still answers the recorded requests with the recorded structure (else: `make record-transcripts`).

The fake replays these recordings (tests/local/test_fake_drift.py holds the fake to them), so a recording that no
longer matches the real server would let the fake drift from the engine unnoticed.
"""

from __future__ import annotations

import pytest
import requests

from tests.engines.transcripts import DIR, SCENARIOS, load, metric_names, record_one, structure
from tests.engines.vllm_server import VllmServer


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_real_vllm_matches_its_recording(vllm: VllmServer, name: str) -> None:
    recorded = load(name)
    assert recorded["request"]["body"] == SCENARIOS[name][2], "scenario changed: run make record-transcripts"
    assert structure(record_one(vllm.url, name)) == structure(recorded)


def test_recorded_metric_families_are_still_exported(vllm: VllmServer) -> None:
    recorded = load("metrics")["metric_names"]
    assert metric_names(requests.get(vllm.url + "/metrics", timeout=30).text) == recorded


def test_every_scenario_has_a_recording() -> None:
    assert sorted(p.stem for p in DIR.glob("*.json")) == sorted([*SCENARIOS, "metrics"])


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 11: gateway fix pending (the dashboard queries vllm:gpu_cache_usage_perc)",
)
def test_dashboard_queries_only_metrics_real_vllm_exports(vllm: VllmServer) -> None:
    import re
    from pathlib import Path

    exported = set(metric_names(requests.get(vllm.url + "/metrics", timeout=30).text))
    dashboards = Path(__file__).resolve().parents[2] / "local" / "grafana" / "dashboards"
    queried = {m for p in dashboards.glob("*.json") for m in re.findall(r"vllm:[a-z_:]+", p.read_text())}
    # counters are exported as <name>_total, histograms as <name>_bucket/_sum/_count
    base = {re.sub(r"_(total|bucket|sum|count)$", "", q) for q in queried}
    assert queried and base <= exported, sorted(base - exported)
