"""The Grafana dashboard only queries metrics that exist (the gateway's own registry, and what vLLM 0.32 exports:
``vllm:gpu_cache_usage_perc`` is gone, ``vllm:kv_cache_usage_perc`` replaced it), and ``local-up``'s key handling:
the key it prints is exactly the key the gateway accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from config.local_section import LocalConfig
from local.auth import KeyStore
from local.bootstrap import ensure_key
from local.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "local" / "grafana" / "dashboards" / "gateway.json"
VLLM_METRICS = Path(__file__).parent / "data" / "vllm_0_32_metrics.txt"


def dashboard_metrics() -> set[str]:
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])]
    names = set()
    for e in exprs:
        names |= set(re.findall(r"(vllm:[a-z_:]+|llm_gateway_[a-z_]+)", e))
    return names


def test_dashboard_vllm_metrics_exist_in_vllm_0_32() -> None:
    exported = {line for line in VLLM_METRICS.read_text().splitlines() if line and not line.startswith("#")}
    wanted = {n for n in dashboard_metrics() if n.startswith("vllm:")}
    assert "vllm:kv_cache_usage_perc" in wanted
    assert wanted <= exported, f"not exported by vLLM 0.32: {sorted(wanted - exported)}"


def test_dashboard_gateway_metrics_exist() -> None:
    m = Metrics(["m"])
    m.request("chat", "e", "m", 200)
    m.error("e", "m", "x")
    m.stream_error("e", "x")
    m.observe("e", "m", 0.1)
    m.first_token("e", "m", 0.1)
    m.count_tokens("e", "m", 1, 1)
    m.breaker.labels("e").set(0)
    exported = {s.name for metric in m.registry.collect() for s in metric.samples}
    wanted = {n for n in dashboard_metrics() if n.startswith("llm_gateway_")}
    assert "llm_gateway_stream_errors_total" in wanted
    assert wanted <= exported, f"not exported by the gateway: {sorted(wanted - exported)}"


def gateway_accepts(run_dir: Path, key: str) -> bool:
    """What the gateway started by local-up does: read the digests file bootstrap points it at."""
    store = KeyStore(LocalConfig(api_keys_file=str(run_dir / "api_keys.sha256")), None)
    try:
        store.authenticate(f"Bearer {key}")
    except Exception:
        return False
    return True


def test_env_key_in_a_fresh_run_dir_is_the_key_the_gateway_accepts(tmp_path: Path) -> None:
    key, source = ensure_key(tmp_path, "sk-from-env-123")
    assert key == "sk-from-env-123" and "LLM_GATEWAY_API_KEY" in source
    assert gateway_accepts(tmp_path, key)


def test_env_key_replaces_an_earlier_generated_key(tmp_path: Path) -> None:
    old, _ = ensure_key(tmp_path, None)
    assert gateway_accepts(tmp_path, old)
    new, _ = ensure_key(tmp_path, "sk-new-env-key")
    assert gateway_accepts(tmp_path, new) and not gateway_accepts(tmp_path, old)
    # without the env key, the stored generated key is the one again
    again, _ = ensure_key(tmp_path, None)
    assert again == old and gateway_accepts(tmp_path, old) and not gateway_accepts(tmp_path, new)
