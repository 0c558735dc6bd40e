"""The pieces: shipped data, distillation loss and student initialisation, step cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from config.edge_section import EdgeDataConfig
from edge.cache import cached_step
from edge.data.generate import DEFAULT_OUT, generate
from edge.dataset import SHIPPED_DATA, load_examples, split_examples
from edge.distill import distillation_loss, make_student, teacher_layer_indices


def test_shipped_data_is_the_generator_output() -> None:
    rows = [json.loads(line) for line in DEFAULT_OUT.read_text(encoding="utf-8").splitlines()]
    assert rows == generate()
    assert len(rows) == 3000
    assert len({r["text"] for r in rows}) == 3000
    assert sum(r["label"] == "positive" for r in rows) == 1500
    assert sum(r["lang"] == "zh" for r in rows) == 1500


def test_split_is_deterministic_and_disjoint() -> None:
    cfg = EdgeDataConfig()
    examples = load_examples(cfg, Path("."))
    assert SHIPPED_DATA == DEFAULT_OUT
    a, b = split_examples(examples, cfg, 0), split_examples(examples, cfg, 0)
    assert a == b
    assert [len(a[s]) for s in ("train", "validation", "test")] == [2400, 300, 300]
    texts = [{e.text for e in a[s]} for s in ("train", "validation", "test")]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])


def test_layer_choice_follows_distilbert() -> None:
    assert teacher_layer_indices(12, 6) == [0, 2, 4, 6, 8, 10]  # the default: e5-small's 12 -> 6
    assert teacher_layer_indices(6, 3) == [0, 2, 4]
    assert teacher_layer_indices(4, 1) == [0]


def test_student_is_initialised_from_teacher_layers() -> None:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32)
    teacher = BertForSequenceClassification(cfg).eval()
    student = make_student(teacher, 2).eval()
    assert student.config.num_hidden_layers == 2
    assert teacher.config.num_hidden_layers == 4
    for s_idx, t_idx in enumerate([0, 2]):
        s_state = student.bert.encoder.layer[s_idx].state_dict()
        t_state = teacher.bert.encoder.layer[t_idx].state_dict()
        assert all(torch.equal(s_state[k], t_state[k]) for k in t_state)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    # A copy, not shared storage: training the student must leave the teacher alone.
    student.classifier.weight.data.add_(1.0)
    assert not torch.equal(student.classifier.weight, teacher.classifier.weight)
    ids = torch.randint(0, 50, (2, 7))
    assert student(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.shape == (2, 2)


def test_distillation_loss() -> None:
    labels = torch.tensor([0, 1])
    t = torch.tensor([[2.0, -1.0], [-0.5, 1.5]])
    # Matching the teacher makes the soft term zero; alpha=1 leaves only it.
    assert distillation_loss(t, t, labels, 2.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    # alpha=0 is plain cross-entropy.
    s = torch.tensor([[0.3, 0.1], [0.2, 0.9]])
    ce = torch.nn.functional.cross_entropy(s, labels)
    assert distillation_loss(s, t, labels, 3.0, 0.0).item() == pytest.approx(ce.item())
    assert distillation_loss(s, t, labels, 2.0, 0.5).item() > 0


def test_cache_builds_once_and_rebuilds_on_new_inputs(tmp_path: Path) -> None:
    calls: list[Path] = []

    def build(d: Path) -> None:
        calls.append(d)
        (d / "x.txt").write_text("hello")

    d1, k1 = cached_step(tmp_path, "step", {"a": 1}, build)
    d2, k2 = cached_step(tmp_path, "step", {"a": 1}, build)
    assert (d1, k1) == (d2, k2)
    assert len(calls) == 1
    assert (d1 / "x.txt").read_text() == "hello"
    d3, k3 = cached_step(tmp_path, "step", {"a": 2}, build)
    assert k3 != k1
    assert d3 != d1
    assert len(calls) == 2

    def broken(d: Path) -> None:
        (d / "half.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cached_step(tmp_path, "step", {"a": 3}, broken)
    # Nothing half-written is left behind for a later run to trust.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([d1.name, d3.name])


def test_floors_and_service_gate_trip() -> None:
    from config.edge_section import EdgeConfig
    from edge.validate import VariantResult, apply_gates, by_language

    pred = np.array([1, 1, 0, 0, 1, 0])
    labels = np.array([1, 0, 0, 0, 1, 1])
    acc, confusion = by_language(pred, labels, ["en", "en", "en", "zh", "zh", "zh"])
    assert acc == {"en": pytest.approx(2 / 3), "zh": pytest.approx(2 / 3)}
    assert confusion["en"] == [[1, 1], [0, 1]] and confusion["zh"] == [[1, 0], [1, 1]]
    cfg = EdgeConfig(accuracy_floors={"en": 0.6, "zh": 0.7}, service_accuracy_floor=0.8)
    res = VariantResult("student", "pytorch", "teacher", None, 1, 1, accuracy=2 / 3, accuracy_by_lang=acc)
    res.service_accuracy = 0.75
    failures = apply_gates([res], cfg)
    assert not res.gate_ok
    assert failures == [
        "student: zh accuracy 66.67% is below the floor 70.0% (edge.accuracy_floors.zh)",
        "student: customer-service accuracy 75.00% is below the floor 80.0% (edge.service_accuracy_floor)",
    ]
    ok = VariantResult("teacher", "pytorch", None, None, 1, 1, accuracy=0.9, accuracy_by_lang={"en": 0.9, "zh": 0.9})
    ok.service_accuracy = 0.9
    assert apply_gates([ok], cfg) == [] and ok.gate_ok


def _mean_pool_model() -> torch.nn.Module:
    from config.edge_section import EdgeTeacherConfig
    from edge.teacher import build_teacher

    cfg = EdgeTeacherConfig(
        pretrained=None, pooling="mean", hidden_size=16, num_layers=3, num_heads=2, intermediate_size=32
    )
    return build_teacher(cfg, vocab_size=50, num_labels=2, max_positions=32, seed=0).eval()


def test_mean_pooling_reads_only_real_tokens_and_survives_save_load(tmp_path: Path) -> None:
    from edge.distill import make_student
    from edge.teacher import MeanPoolBertForSequenceClassification, load_model, lower_states, save_model, upper_logits

    model = _mean_pool_model()
    assert isinstance(model, MeanPoolBertForSequenceClassification) and model.bert.pooler is None
    ids = torch.randint(5, 50, (2, 9))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        # Whatever sits in the padded positions must not move the sentence vector.
        other = ids.clone()
        other[0, 5:] = 7
        assert torch.allclose(model(input_ids=other, attention_mask=mask).logits[0], logits[0], atol=1e-5)
        # The frozen-layer split forward (training) computes the same logits as the whole model (export).
        split = upper_logits(model, lower_states(model, ids, mask, 1), mask, 1)
        assert torch.allclose(split, logits, atol=1e-5)
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert isinstance(back, MeanPoolBertForSequenceClassification)
    with torch.no_grad():
        assert torch.allclose(back(input_ids=ids, attention_mask=mask).logits, logits, atol=1e-6)
    assert isinstance(make_student(model, 1), MeanPoolBertForSequenceClassification)


def test_bf16_training_keeps_float32_weights_and_learns() -> None:
    from edge.dataset import Example
    from edge.teacher import fit, use_bf16
    from local.embedded.cpu import native_bf16

    assert use_bf16("float32") is False and use_bf16("bfloat16") is True
    assert use_bf16("auto") is native_bf16()  # the same answer the embedded engine's dtype: auto uses
    model = _mean_pool_model()

    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = Tokenizer(WordLevel({"[PAD]": 0, "[UNK]": 1, "good": 2, "bad": 3, "very": 4}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    train = [Example("very " * (i % 4) + "good", 1) for i in range(32)]
    train += [Example("very " * (i % 4) + "bad", 0) for i in range(32)]
    out = fit(
        model,
        train,
        tok,
        epochs=8,
        batch_size=16,
        learning_rate=3e-3,
        freeze_layers=1,
        max_len=16,
        rng=np.random.default_rng(0),
        loss_fn=lambda z, y, _: torch.nn.functional.cross_entropy(z, y),
        desc="bf16",
        bf16=True,
    )
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert out.dtype == np.float32 and out.shape == (64, 2)
    assert (out.argmax(1) == np.array([e.label for e in train])).mean() == 1.0
