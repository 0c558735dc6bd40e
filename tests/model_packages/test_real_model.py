"""The real-model conversion refuses what it cannot trust (the full conversion runs in the engine tier)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.errors import ConfigError
from model_packages import real_model


def test_a_wheel_with_another_hash_is_refused_and_deleted(tmp_path: Path) -> None:
    wheel = tmp_path / real_model.WHEEL_FILE
    wheel.write_bytes(b"not the pinned wheel")
    with pytest.raises(ConfigError, match=f"is not the pinned {real_model.WHEEL_SHA256}"):
        real_model.fetch_wheel(tmp_path)
    assert not wheel.exists()


def test_is_converted_needs_the_provenance_of_the_pinned_wheel(tmp_path: Path) -> None:
    assert not real_model.is_converted(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    meta = tmp_path / real_model.PROVENANCE_FILE
    meta.write_text(json.dumps({"wheel_sha256": "0" * 64}))
    assert not real_model.is_converted(tmp_path)
    meta.write_text(json.dumps({"wheel_sha256": real_model.WHEEL_SHA256}))
    assert real_model.is_converted(tmp_path)


def test_missing_converters_name_the_make_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(real_model, "_importable", lambda m: m != "gguf")
    with pytest.raises(ConfigError, match=r"gguf not importable: .*make model"):
        real_model._require_converters()
