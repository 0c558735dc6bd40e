"""The typed config: the shipped files load, and every bad value stops with a message naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError, load_config
from config.loader import load_config_file, parse_config, update_config_value

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def prod() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config" / "prod.yaml").read_text(encoding="utf-8"))


def bad(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "prod.yaml")
    return str(info.value)


def test_shipped_configs_load_and_prod_follows_the_reference_guide() -> None:
    dev, prod = load_config("dev"), load_config("prod")
    assert dev.environment == "dev"
    assert (prod.endpoint.min_instances, prod.endpoint.max_instances) == (2, 10)
    assert prod.endpoint.target_qps_per_instance == 50
    assert prod.endpoint.target_invocations_per_instance_per_minute == 3000
    assert prod.endpoint_name == "llm-prod-gpt2-large"


def test_unknown_key_names_its_path(prod: dict[str, Any]) -> None:
    prod["endpoint"]["min_instance"] = 3
    assert "prod.yaml: endpoint.min_instance: unknown key" in bad(prod)


def test_wrong_type_names_its_path(prod: dict[str, Any]) -> None:
    prod["endpoint"]["max_instances"] = "ten"
    msg = bad(prod)
    assert "endpoint.max_instances" in msg
    assert "integer" in msg


def test_min_greater_than_max(prod: dict[str, Any]) -> None:
    prod["endpoint"]["min_instances"] = 11
    msg = bad(prod)
    assert "endpoint.min_instances" in msg
    assert "11 > max_instances 10" in msg


def test_instance_type_must_be_sagemaker(prod: dict[str, Any]) -> None:
    prod["endpoint"]["instance_type"] = "g5.2xlarge"
    assert "endpoint.instance_type: 'g5.2xlarge' is not a SageMaker instance type: expected ml.*" in bad(prod)


def test_unknown_ml_instance_lists_known_ones(prod: dict[str, Any]) -> None:
    prod["endpoint"]["instance_type"] = "ml.z9.mega"
    msg = bad(prod)
    assert "not in config/instances.yaml" in msg
    assert "ml.g5.12xlarge" in msg


def test_13b_fp16_does_not_fit_g5_2xlarge_and_suggests_fixes(prod: dict[str, Any]) -> None:
    prod["model"]["params_billions"] = 13
    msg = bad(prod)
    assert msg.startswith("prod.yaml: endpoint.instance_type: a 13B model at fp16 needs ~63.5 GiB")
    assert (
        "a smaller KV cache ((runtime.max_batch_size + 1 scratch row) x (max_input_tokens + max_new_tokens) = 50688 tokens now)"
        in msg
    )
    assert "ml.g5.2xlarge has 1 x 24 GiB GPU" in msg
    assert "instance_type ml.g5.12xlarge" in msg
    assert "model.quantization: awq" in msg


def test_13b_fits_with_4bit_quantization(prod: dict[str, Any]) -> None:
    prod["model"]["params_billions"] = 13
    prod["model"]["quantization"] = "awq"
    prod["endpoint"]["engine"] = "lmi"  # vLLM serves AWQ; the handler does not
    cfg = parse_config(prod)
    assert cfg.footprint.total_gib < 24
    assert cfg.model.quantization == "awq"


def test_bad_literal_lists_allowed_values(prod: dict[str, Any]) -> None:
    prod["model"]["dtype"] = "fp64"
    msg = bad(prod)
    assert "model.dtype" in msg
    assert "'bf16'" in msg and "fp64" in msg


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("timezone", "Mars/Olympus", "IANA time zone"),
        ("start", "every day at 8", "cron(m h dom mon dow yr)"),
        ("min_instances", 50, "scheduled_scaling.0.min_instances: 50 > max_instances 10"),
    ],
)
def test_scheduled_window_errors(prod: dict[str, Any], field: str, value: Any, expected: str) -> None:
    prod["endpoint"]["scheduled_scaling"][0][field] = value
    msg = bad(prod)
    assert "endpoint.scheduled_scaling.0" in msg
    assert expected in msg


def test_existing_vpc_needs_ids(prod: dict[str, Any]) -> None:
    prod["endpoint"]["vpc"] = {"mode": "existing", "vpc_id": "vpc-0123456789abcdef0"}
    assert "endpoint.vpc.subnet_ids" in bad(prod)


def test_artifact_key_must_be_a_bucket_key(prod: dict[str, Any]) -> None:
    prod["model"]["artifact_key"] = "s3://bucket/models/x/model.tar.gz"
    assert "model.artifact_key: must be a key inside the artifact bucket" in bad(prod)


def test_root_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="<root>: expected a mapping"):
        parse_config(["not", "a", "mapping"], "x.yaml")


def test_env_name_must_match_file(tmp_path: Path, prod: dict[str, Any]) -> None:
    (tmp_path / "staging.yaml").write_text(yaml.safe_dump(prod), encoding="utf-8")
    with pytest.raises(ConfigError, match="does not match the file name 'staging'"):
        load_config("staging", tmp_path)


def test_missing_env_lists_known(tmp_path: Path) -> None:
    (tmp_path / "dev.yaml").write_text("environment: dev\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no config/qa.yaml; known environments: dev"):
        load_config("qa", tmp_path)


def test_invalid_yaml(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("environment: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(p)


def test_update_config_value_is_atomic_and_validated(tmp_path: Path, prod: dict[str, Any]) -> None:
    p = tmp_path / "prod.yaml"
    p.write_text(yaml.safe_dump(prod), encoding="utf-8")
    update_config_value(p, "model.artifact_key", "models/gpt2-large/abc123/model.tar.gz")
    assert load_config("prod", tmp_path).model.artifact_key == "models/gpt2-large/abc123/model.tar.gz"
    before = p.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match=r"model.artifact_key"):
        update_config_value(p, "model.artifact_key", "/abs/path.zip")
    assert p.read_text(encoding="utf-8") == before
    assert [f.name for f in tmp_path.iterdir()] == ["prod.yaml"]


def test_config_is_frozen() -> None:
    cfg = load_config("dev")
    with pytest.raises(Exception, match="frozen"):
        cfg.endpoint.min_instances = 5  # type: ignore[misc]


def test_sections_are_independent_copies(prod: dict[str, Any]) -> None:
    a = parse_config(copy.deepcopy(prod))
    prod["endpoint"]["max_instances"] = 12
    b = parse_config(prod)
    assert (a.endpoint.max_instances, b.endpoint.max_instances) == (10, 12)


def test_config_reference_is_up_to_date() -> None:
    from config.reference import render_reference

    assert (REPO / "docs" / "CONFIG.md").read_text(encoding="utf-8") == render_reference(), (
        "docs/CONFIG.md is stale: run `make config-docs`"
    )


def test_update_config_value_keeps_comments(tmp_path: Path) -> None:
    p = tmp_path / "prod.yaml"
    p.write_text((REPO / "config" / "prod.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    update_config_value(p, "model.artifact_key", "models/gpt2-large/feedbeef/model.tar.gz")
    text = p.read_text(encoding="utf-8")
    assert "# 7 years, a common banking retention" in text
    assert "artifact_key: models/gpt2-large/feedbeef/model.tar.gz" in text
