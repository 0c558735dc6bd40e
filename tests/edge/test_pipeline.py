"""End to end on the tiny configuration: every artifact, parity, gates, report, mobile files, caching, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from config.edge_section import EdgeConfig
from edge.dataset import read_split
from edge.errors import ParityError
from edge.pipeline import ROOT
from edge.runtime import OnnxRunner, TfliteRunner, TorchRunner, predict
from edge.teacher import load_model
from edge.tokenizer import encode, load_tokenizer
from edge.validate import VariantResult, apply_gates, check_parity, score
from tests.edge.conftest import TINY, write_env

ARTIFACTS = [
    "teacher/model.safetensors",
    "student/model.safetensors",
    "onnx/student.onnx",
    "onnx/student.int8.onnx",
    "onnx/student.qdq.onnx",
    "tflite/student.tflite",
    "tflite/student.int8.tflite",
    "coreml/student.mlpackage/Manifest.json",
    "mobile/vocab.txt",
    "mobile/labels.json",
    "mobile/meta.json",
    "report.json",
    "report.md",
    "report.png",
]
VARIANTS = ["teacher", "student", "onnx_fp32", "onnx_int8", "onnx_qdq", "tflite_fp32", "tflite_int8", "coreml"]


def _variant(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in report["variants"] if v["name"] == name)


def test_every_artifact_is_written(tiny_run: tuple[EdgeConfig, dict[str, Any]]) -> None:
    cfg, _ = tiny_run
    out = Path(cfg.out_dir)
    missing = [a for a in ARTIFACTS if not (out / a).is_file()]
    assert not missing
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000


def test_report_holds_the_numbers(tiny_run: tuple[EdgeConfig, dict[str, Any]]) -> None:
    cfg, report = tiny_run
    on_disk = json.loads((Path(cfg.out_dir) / "report.json").read_text())
    assert [v["name"] for v in on_disk["variants"]] == VARIANTS
    assert on_disk["failures"] == []
    for name in VARIANTS[:-1]:  # Core ML cannot run on Linux
        v = _variant(on_disk, name)
        assert 0.0 <= v["accuracy"] <= 1.0
        assert v["latency_p50_ms"] > 0
        assert v["latency_p99_ms"] >= v["latency_p50_ms"]
        assert v["size_bytes"] > 0
        assert v["gate_ok"]
    teacher, student = _variant(on_disk, "teacher"), _variant(on_disk, "student")
    assert teacher["accuracy"] >= 0.75, "the tiny teacher should learn the template data (chance is 0.5)"
    assert student["params"] < teacher["params"]
    for name in ("onnx_fp32", "tflite_fp32"):
        v = _variant(on_disk, name)
        assert v["parity_ok"]
        assert v["max_abs_dlogit"] <= min(cfg.onnx_fp32_atol, cfg.tflite_fp32_atol)
        assert v["agreement"] == 1.0
    assert _variant(on_disk, "onnx_int8")["size_bytes"] < _variant(on_disk, "onnx_fp32")["size_bytes"]
    assert _variant(on_disk, "tflite_int8")["size_bytes"] < _variant(on_disk, "tflite_fp32")["size_bytes"]
    assert "macOS" in " ".join(_variant(on_disk, "coreml")["notes"])
    summary = on_disk["summary"]
    assert summary["student_vs_teacher"]["params_reduction"] > 0
    assert summary["onnx_int8_vs_pytorch_fp32"]["speedup_p50"] > 0
    md = (Path(cfg.out_dir) / "report.md").read_text()
    assert all(f"| {name} |" in md for name in VARIANTS)
    assert report["summary"] == summary


def test_onnx_has_dynamic_axes_and_matches_pytorch(tiny_run: tuple[EdgeConfig, dict[str, Any]]) -> None:
    cfg, _ = tiny_run
    out = Path(cfg.out_dir)
    model = onnx.load(str(out / "onnx" / "student.onnx"))
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert all(isinstance(d[0], str) and isinstance(d[1], str) for d in dims), dims
    student = load_model(out / "student")
    texts = ["The food was really great.", "服务太慢了。", "Although the price was awful, the staff was lovely."]
    ids, mask = _encode_with_run_tokenizer(cfg, texts)
    ref = predict(TorchRunner(student, 1), ids, mask)
    for batch in (1, 3):  # dynamic batch axis; sequence length differs from the export's sample
        got = OnnxRunner(out / "onnx" / "student.onnx", 1).logits(ids[:batch], mask[:batch])
        check_parity("onnx_fp32", ref[:batch], got, cfg.onnx_fp32_atol)
    tfl = TfliteRunner(out / "tflite" / "student.tflite", 1, cfg.max_seq_len).logits(ids, mask)
    check_parity("tflite_fp32", ref, tfl, cfg.tflite_fp32_atol)


def _encode_with_run_tokenizer(cfg: EdgeConfig, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    tok_dir = next(Path(cfg.cache_dir).glob("tokenizer-*"))
    return encode(load_tokenizer(tok_dir), texts, cfg.max_seq_len)


def test_qdq_variant_is_restricted_to_matmul_and_gather(tiny_run: tuple[EdgeConfig, dict[str, Any]]) -> None:
    cfg, _ = tiny_run
    model = onnx.load(str(Path(cfg.out_dir) / "onnx" / "student.qdq.onnx"))
    weights = {t.name for t in model.graph.initializer}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    dq_out = {o: n.input[0] in weights for n in dq for o in n.output}
    weight_consumers = {n.op_type for n in model.graph.node for i in n.input if dq_out.get(i)}
    all_consumers = {n.op_type for n in model.graph.node for i in n.input if i in dq_out}
    # INT8 weights only for MatMul and Gather; the numerically fragile ops never read quantized tensors.
    assert weight_consumers == {"MatMul", "Gather"}, weight_consumers
    assert not all_consumers & {"LayerNormalization", "Softmax", "Erf", "Gemm", "Tanh", "Div"}, all_consumers
    zero_points = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("zero_point")]
    assert zero_points
    assert all((z == 0).all() for z in zero_points), "symmetric quantization has zero points of 0"
    assert "LayerNormalization" in {n.op_type for n in model.graph.node}


def test_dynamic_int8_is_fused_and_per_channel(tiny_run: tuple[EdgeConfig, dict[str, Any]]) -> None:
    cfg, _ = tiny_run
    model = onnx.load(str(Path(cfg.out_dir) / "onnx" / "student.int8.onnx"))
    ops = {n.op_type for n in model.graph.node}
    # ONNX Runtime's BERT fusions ran on the FP32 graph before quantizing, and the weight MatMuls are INT8.
    assert {"SkipLayerNormalization", "MatMulInteger"} <= ops, ops
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weight_zero_points = [inits[n.input[3]] for n in model.graph.node if n.op_type == "MatMulInteger"]
    # Per-channel: each INT8 weight carries one zero point (and scale) per output column, not one per tensor.
    assert weight_zero_points and all(z.ndim == 1 and z.size > 1 for z in weight_zero_points)


def test_mobile_files_match_the_tokenizer(tiny_run: tuple[EdgeConfig, dict[str, Any]]) -> None:
    cfg, _ = tiny_run
    mobile = Path(cfg.out_dir) / "mobile"
    vocab = (mobile / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert json.loads((mobile / "labels.json").read_text()) == cfg.data.labels
    meta = json.loads((mobile / "meta.json").read_text())
    assert sorted(meta["tflite_inputs"]) == ["attention_mask", "input_ids"]
    assert meta["tflite_output"] == "output_0"
    assert (Path(cfg.out_dir) / "tflite" / meta["tflite_model"]).is_file()
    assert meta["max_seq_len"] == cfg.max_seq_len
    # The mobile snippets' greedy WordPiece over vocab.txt must give the ids the pipeline's tokenizer gives.
    text = "Honestly, the keyboard felt slow. 这部电影非常棒！"
    ids, _ = _encode_with_run_tokenizer(cfg, [text])
    assert _reference_wordpiece(text, vocab) == ids[0].tolist()


def _reference_wordpiece(text: str, vocab: list[str]) -> list[int]:
    """The algorithm edge/mobile/*/WordPiece* implement, in Python: basic split, then greedy longest match."""
    import unicodedata

    index = {t: i for i, t in enumerate(vocab)}
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words, cur = [], ""
    for c in text:
        cjk = 0x4E00 <= ord(c) <= 0x9FFF or 0x3400 <= ord(c) <= 0x4DBF
        punct = unicodedata.category(c).startswith("P") or (c.isascii() and not c.isalnum() and not c.isspace())
        if c.isspace() or cjk or punct:
            if cur:
                words.append(cur)
            cur = ""
            if cjk or punct:
                words.append(c)
        else:
            cur += c
    if cur:
        words.append(cur)
    ids = [index["[CLS]"]]
    for w in words:
        start, pieces = 0, []
        while start < len(w):
            end = len(w)
            while end > start and (("##" if start else "") + w[start:end]) not in index:
                end -= 1
            if end == start:
                pieces = [index["[UNK]"]]
                break
            pieces.append(index[("##" if start else "") + w[start:end]])
            start = end
        ids += pieces
    return [*ids, index["[SEP]"]]


def _break_classifier(src: Path, dst: Path) -> None:
    """A deliberately broken variant: the classifier weights negated, so every prediction flips."""
    model = onnx.load(str(src))
    hits = 0
    for init in model.graph.initializer:
        if "classifier" in init.name and "weight" in init.name:
            init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
            hits += 1
    assert hits, [i.name for i in model.graph.initializer]
    onnx.save(model, str(dst))


def test_gates_trip_on_a_broken_variant(tiny_run: tuple[EdgeConfig, dict[str, Any]], tmp_path: Path) -> None:
    cfg, _ = tiny_run
    out = Path(cfg.out_dir)
    broken = tmp_path / "broken.onnx"
    _break_classifier(out / "onnx" / "student.onnx", broken)
    test = read_split(next(Path(cfg.cache_dir).glob("data-*")), "test")
    ids, mask = _encode_with_run_tokenizer(cfg, [e.text for e in test])
    labels = np.array([e.label for e in test])
    ref = predict(TorchRunner(load_model(out / "student"), 1), ids, mask)
    ref_acc = float((ref.argmax(-1) == labels).mean())
    got = predict(OnnxRunner(broken, 1), ids, mask)
    with pytest.raises(ParityError, match=r"onnx_fp32: max \|Δlogit\| .* > atol .* on output 'logits'"):
        check_parity("onnx_fp32", ref, got, cfg.onnx_fp32_atol)
    for name in ("onnx_fp32", "onnx_int8"):
        res = VariantResult(name, "onnx", "student", str(broken), 1, broken.stat().st_size)
        score(res, got, labels, ref, ref_acc)
        failures = apply_gates([res], cfg)
        assert not res.gate_ok
        assert any("accuracy-gate" in f or "points below student" in f for f in failures), failures
        assert any(f.startswith(f"{name}: ") for f in failures)


def _cli(config_dir: Path, env: str, *args: str) -> subprocess.CompletedProcess[str]:
    env_vars = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", "edge", "--env", env, "--config-dir", str(config_dir), *args],
        cwd=ROOT,
        env=env_vars,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_reuses_the_cache_and_fails_parity_with_exit_3(
    tiny_run: tuple[EdgeConfig, dict[str, Any]], tiny_dir: Path, tmp_path: Path
) -> None:
    cfg, _ = tiny_run
    edge = {**TINY, "out_dir": str(tmp_path / "out"), "cache_dir": cfg.cache_dir, "onnx_fp32_atol": 1e-12}
    write_env(tmp_path / "cfg", "tiny", edge)
    proc = _cli(tmp_path / "cfg", "tiny", "--until", "onnx")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "student: cached" in proc.stderr
    assert "ParityError" in proc.stderr
    assert "on output 'logits'" in proc.stderr
