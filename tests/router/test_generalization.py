"""The disguise generator and the held-out evaluation (issue 10 item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router import generalization, variants
from router import words as W
from router.detect import Detector, cn_id_ok, iban_ok, luhn_ok, ssn_ok

CONVERSATIONS = Path(__file__).parents[1] / "data" / "router_conversations.jsonl"


def test_generator_is_seeded_and_splits_are_disjoint() -> None:
    a = [c.text for c in variants.generate("test", 2)]
    assert a == [c.text for c in variants.generate("test", 2)]
    assert a != [c.text for c in variants.generate("test", 3)]
    for kind, (tune, test) in variants.TEMPLATES.items():
        assert not set(tune) & set(test), kind
    assert not set(variants.NAMES_EN[0]) & set(variants.NAMES_EN[1])
    assert not set(variants.STREETS_EN[0]) & set(variants.STREETS_EN[1])
    tune_texts = {c.text for c in variants.generate("tune", 1)}
    assert not tune_texts & set(a)


def test_generated_values_are_valid() -> None:
    import random

    rng = random.Random(7)
    for _ in range(200):
        assert luhn_ok(variants.card(rng))
        assert cn_id_ok(variants.cn_id(rng))
        assert iban_ok(variants.iban(rng))
        assert ssn_ok(variants.ssn(rng))


def test_every_type_and_disguise_is_generated() -> None:
    cases = list(variants.generate("tune", 1))
    types = {t for c in cases for t in c.types}
    assert types == set(W.TYPES)
    numeric = {(c.types[0], c.disguise) for c in cases if c.types and c.types[0] in variants.TEMPLATES}
    lettered = (W.IBAN, W.PASSPORT, W.CN_ID)
    for kind in (W.CARD, W.BANK_ACCOUNT, W.CN_ID, W.PHONE, W.IBAN, W.SSN, W.PASSPORT):
        expected = set(variants.DIGIT_DISGUISES) | (set(variants.CASE_DISGUISES) if kind in lettered else set())
        assert {d for k, d in numeric if k == kind} == expected, kind
    assert any(not c.types for c in cases)


def test_conversations_are_labelled_and_split() -> None:
    convs = generalization.read_conversations(CONVERSATIONS)
    assert len(convs) >= 60
    for split in variants.SPLITS:
        part = [c for c in convs if c.split == split]
        assert sum(1 for c in part if c.types) >= 20 and sum(1 for c in part if not c.types) >= 10
        assert {"en", "zh"} <= {("zh" if not "".join(c.texts).isascii() else "en") for c in part}


def test_held_out_quality() -> None:
    """Regression guard on the numbers reported in docs/benchmarks/router.md."""
    d = Detector()
    tune = generalization.evaluate(generalization.generated("tune"), d)
    test = generalization.evaluate(generalization.generated("test"), d)
    assert tune["recall"] == 1.0 and test["recall"] == 1.0
    assert all(r == 1.0 for r in test["recall_by_disguise"].values())
    assert tune["lookalikes_left_alone"] >= 0.98 and test["lookalikes_left_alone"] >= 0.98


def test_test_split_with_conversations_and_the_second_held_out_set() -> None:
    """The numbers docs/benchmarks/router.md reports after the lowercase-IBAN fix (tuned on the tune split only)."""
    d = Detector()
    convs = generalization.read_conversations(CONVERSATIONS)
    test = generalization.evaluate(generalization.generated("test") + [c for c in convs if c.split == "test"], d)
    assert test["recall"] == 1.0 and test["precision"] >= 0.9881
    held = generalization.read_conversations(generalization.HELDOUT)
    assert {c.split for c in held} == {generalization.HELDOUT_SPLIT}
    assert not {c.texts for c in held} & {c.texts for c in convs}  # written fresh, not copied
    result = generalization.evaluate(held, d)
    assert result["n_by_type"]["iban"] >= 15 and result["n_lookalikes"] >= 10
    assert result["recall"] >= 0.96 and result["precision"] >= 0.96


def test_cli_prints_every_split(capsys: pytest.CaptureFixture[str]) -> None:
    assert generalization.main(["--conversations", str(CONVERSATIONS)]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert set(summary) == {"tune", "test", "heldout"}
    assert set(summary["test"]["recall_by_type"]) == set(W.TYPES)
    assert "test miss" not in out and "heldout miss" not in out  # held-out splits are never listed case by case


def test_bad_conversation_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"id": "x", "split": "dev", "types": [], "messages": [{"role": "user", "content": "hi"}]}\n')
    assert generalization.main(["--conversations", str(bad)]) == 2
    assert "c.jsonl:1: split" in capsys.readouterr().err
