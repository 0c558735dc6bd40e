"""The config the gateway ConfigMap carries starts the real gateway (uvicorn on 127.0.0.1) as the pod would."""

from __future__ import annotations

from pathlib import Path

import yaml

from config.loader import parse_config
from local.k8s.render import Rendered
from tests.k8s.conftest import find
from tests.local.gateway import RunningGateway

KEY = "sk-cluster-client-0123456789"


def test_generated_config_serves(prod: Rendered, tmp_path: Path) -> None:
    cm = find(prod, "ConfigMap", "gateway-config")
    cfg = parse_config(yaml.safe_load(cm["data"]["prod.yaml"]), "configmap")
    # The Secret file the pod mounts at api_keys_file, here in a temp folder.
    keys = tmp_path / "api_keys"
    keys.write_text(KEY + "\n")
    local = cfg.local.model_copy(update={"api_keys_file": str(keys)})
    with RunningGateway(local, api_key=None) as gw:
        assert gw.get("/health", key=None).status_code == 200
        assert gw.get("/v1/models", key=None).status_code == 401
        models = gw.get("/v1/models", key=KEY).json()
        assert [m["id"] for m in models["data"]] == [cfg.local.served_model]
        ready = gw.get("/ready", key=None)
        # Cluster DNS names do not resolve here: not ready, and the body names each in-cluster engine.
        assert ready.status_code == 503
        assert set(ready.json()["engines"]) == {"vllm", "sglang"}
