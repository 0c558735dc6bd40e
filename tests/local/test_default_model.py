"""The default served model is the real SmolLM2 under its own name; another model directory is served as itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.local_section import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME, LocalConfig, model_name_from_dir
from local import bootstrap
from local.settings import EnvOverrides, apply_overrides


def test_default_profile_serves_smollm2_under_its_own_name() -> None:
    local = LocalConfig()
    assert local.embedded.model_dir == DEFAULT_MODEL_DIR
    assert local.resolved_engines()[0].models == [DEFAULT_MODEL_NAME] == ["smollm2-135m-instruct"]


def test_a_bigger_model_is_one_config_line_and_keeps_its_name() -> None:
    local = LocalConfig.model_validate({"embedded": {"model_dir": "/models/Qwen2.5-0.5B-Instruct"}})
    assert local.embedded.models == ["Qwen2.5-0.5B-Instruct"]
    assert local.embedded.name == "embedded" and local.embedded.kind == "embedded"
    assert model_name_from_dir("Qwen/Qwen2.5-0.5B-Instruct/") == "Qwen2.5-0.5B-Instruct"


def test_model_dir_override_serves_the_new_model_under_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # The old code kept the previous name (tiny-smoke-test-gpt2) whatever LLM_GATEWAY_MODEL_DIR pointed at.
    monkeypatch.setenv("LLM_GATEWAY_MODEL_DIR", "/models/Qwen2.5-0.5B-Instruct")
    local = apply_overrides(LocalConfig(), EnvOverrides())
    assert local.embedded.model_dir == "/models/Qwen2.5-0.5B-Instruct"
    assert local.embedded.models == ["Qwen2.5-0.5B-Instruct"]
    monkeypatch.setenv("LLM_GATEWAY_MODEL_NAME", "qwen-small")
    assert apply_overrides(LocalConfig(), EnvOverrides()).embedded.models == ["qwen-small"]


def test_model_dir_whose_name_is_not_a_model_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_MODEL_DIR", "/models/bad name!")
    with pytest.raises(ConfigError, match="local.embedded.models"):
        apply_overrides(LocalConfig(), EnvOverrides())


def test_missing_unknown_model_dir_is_a_config_error(tmp_path: Path) -> None:
    local = LocalConfig.model_validate({"embedded": {"model_dir": str(tmp_path / "nowhere")}})
    with pytest.raises(ConfigError, match="local.embedded.model_dir: .*nowhere does not exist"):
        bootstrap.ensure_model(local)


def test_default_model_dir_triggers_the_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(bootstrap, "convert_default_model", calls.append)
    bootstrap.ensure_model(LocalConfig())
    assert calls == [bootstrap.ROOT / DEFAULT_MODEL_DIR]


def test_examples_show_the_real_question_and_answer() -> None:
    text = bootstrap.examples("http://127.0.0.1:8080", "sk-x", DEFAULT_MODEL_NAME)
    assert "What is the capital of France?" in text and "Paris" in text
    # The promised answer is the greedy one: both examples ask for it (a sampled draw at temperature 1 may not say it).
    assert text.count('"temperature": 0') == 1 and text.count("temperature=0") == 1
    assert "Paris" not in bootstrap.examples("http://127.0.0.1:8080", "sk-x", "other-model")
