"""The ``local:`` config section, settings from the environment, key storage, compose and the bootstrap helpers."""

from __future__ import annotations

import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from config.errors import ConfigError
from config.loader import load_config
from config.local_section import EngineSpec, LocalConfig
from local.auth import KeyStore, digest
from local.bootstrap import ensure_key, examples
from local.errors import GatewayError
from local.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "local" / "compose.yaml"


@pytest.mark.parametrize(("env", "profile"), [("dev", "embedded"), ("prod", "gpu")])
def test_existing_configs_stay_valid(env: str, profile: str) -> None:
    # prod's on-prem side is the GPU cluster `make k8s ENV=prod` renders (vLLM + SGLang); dev stays embedded.
    assert load_config(env).local.profile == profile


def test_profiles_resolve_engines() -> None:
    assert [e.kind for e in LocalConfig().resolved_engines()] == ["embedded"]
    assert [(e.name, e.roles) for e in LocalConfig(profile="dev").resolved_engines()] == [
        ("ollama", ["default", "structured"])
    ]
    gpu = LocalConfig(profile="gpu").resolved_engines()
    assert [(e.name, e.roles) for e in gpu] == [
        ("vllm", ["default"]),
        ("sglang", ["structured"]),
        ("ollama", ["default", "structured"]),
    ]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"profile": "custom"}, "engines: profile 'custom' needs at least one engine"),
        ({"profile": "cloud"}, "profile"),
        (
            {"engines": [{"name": "v", "kind": "vllm", "models": ["m"]}], "profile": "custom"},
            "base_url: required for a vllm engine",
        ),
        (
            {
                "engines": [{"name": "v", "kind": "vllm", "base_url": "localhost:8000", "models": ["m"]}],
                "profile": "custom",
            },
            "must start with http://",
        ),
        ({"port": 70000}, "port"),
        ({"rate_limit": {"per_key_per_s": 0}}, "per_key_per_s"),
        ({"keys": [{"name": "a", "sha256": "sk-plaintext"}]}, "sha256"),
    ],
)
def test_bad_values_name_the_field(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        LocalConfig.model_validate(data)
    assert needle in str(exc.value)


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_PROFILE", "dev")
    monkeypatch.setenv("LLM_GATEWAY_OLLAMA_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("LLM_GATEWAY_API_KEY", "sk-env")
    s = load_settings()
    assert s.local.resolved_engines()[0].base_url == "http://127.0.0.1:1"
    assert s.api_key == "sk-env" and "sk-env" not in repr(s)
    monkeypatch.setenv("LLM_GATEWAY_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="port"):
        load_settings()


def test_keys_are_hashed_and_file_keys_work(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# comment\nsk-plain\nsha256:{digest('sk-hashed')}\n")
    store = KeyStore(LocalConfig(api_keys_file=str(keys_file)), env_key="sk-env")
    assert len(store) == 3
    for k in ("sk-plain", "sk-hashed", "sk-env"):
        store.authenticate(f"Bearer {k}")
    assert "sk-plain" not in repr(store.__dict__)
    with pytest.raises(GatewayError) as exc:
        store.authenticate("Bearer sk-other")
    assert exc.value.status == 401
    with pytest.raises(ConfigError, match="no API key configured"):
        KeyStore(LocalConfig(), env_key=None)
    keys_file.write_text("sha256:abc\n")
    with pytest.raises(ConfigError, match="64 hex digits"):
        KeyStore(LocalConfig(api_keys_file=str(keys_file)), env_key=None)


def test_generated_key_is_owner_only_and_reused(tmp_path: Path) -> None:
    key, source = ensure_key(tmp_path, None)
    assert key.startswith("sk-") and len(key) > 40 and "generated" in source
    assert stat.S_IMODE((tmp_path / "api_key").stat().st_mode) == 0o600
    assert (tmp_path / "api_keys.sha256").read_text().strip() == f"sha256:{digest(key)}"
    assert ensure_key(tmp_path, None)[0] == key
    assert ensure_key(tmp_path, "sk-from-env") == ("sk-from-env", "environment LLM_GATEWAY_API_KEY")
    curl = examples("http://127.0.0.1:8080", key, "m").split("curl:")[1].split("python")[0]
    assert shlex.split(curl.replace("\\\n", " "))[0] == "curl"


def test_compose_validates_against_the_compose_spec() -> None:
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_is_consistent_with_the_config() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    s = compose["services"]
    gpu = {e.name: e for e in LocalConfig(profile="gpu").resolved_engines()}
    defaults = LocalConfig()
    vllm_cmd = s["vllm"]["command"]
    assert f"--served-model-name={defaults.vllm_model}" in vllm_cmd
    assert any(a.startswith("--quantization=") for a in vllm_cmd)
    assert any(a.startswith("--mem-fraction-static=") for a in s["sglang"]["command"])
    assert s["gateway"]["environment"]["LLM_GATEWAY_PROFILE"] == "gpu"
    assert gpu["vllm"].api_key_env in s["gateway"]["environment"]
    assert s["gateway"]["environment"]["LLM_GATEWAY_VLLM_URL"].endswith(":8000")
    assert s["gateway"]["ports"] == [f"127.0.0.1:{defaults.port}:8080"]
    assert s["gateway"]["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert all("healthcheck" in svc for name, svc in s.items() if name != "ollama-init")
    assert "${HF_TOKEN:?" in COMPOSE.read_text()
    prom = yaml.safe_load((ROOT / "local/prometheus/prometheus.yml").read_text())
    assert {"gateway:8080", "vllm:8000"} <= {
        t for j in prom["scrape_configs"] for sc in j["static_configs"] for t in sc["targets"]
    }
    modelfile = (ROOT / "local/ollama/Modelfile").read_text()
    assert all(word in modelfile for word in ("FROM ", "PARAMETER temperature", "SYSTEM ", "ollama create"))
    assert defaults.ollama_model in modelfile


def test_engine_spec_model_mapping() -> None:
    e = EngineSpec(name="v", kind="vllm", base_url="http://127.0.0.1:1/", models=["a"], upstream_models={"a": "b"})
    assert e.base_url == "http://127.0.0.1:1" and e.upstream_model("a") == "b" and e.enforces_schema
    with pytest.raises(ValidationError, match="upstream_models"):
        EngineSpec(name="v", kind="vllm", base_url="http://x:1", models=["a"], upstream_models={"z": "b"})
