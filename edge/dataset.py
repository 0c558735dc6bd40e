"""Load a labelled text-classification set (CSV or JSONL), check it against the config, split it deterministically."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from config.edge_section import EdgeDataConfig
from edge.errors import EdgeInputError

SHIPPED_DATA = Path(__file__).resolve().parent / "data" / "sentiment_bilingual.jsonl"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Example:
    """One labelled sentence; ``label`` is the index into the configured label list, ``lang``/``source`` if known."""

    text: str
    label: int
    lang: str = ""
    source: str = ""


def data_path(cfg: EdgeDataConfig, root: Path) -> Path:
    """The file the config points at (relative paths are taken from the repo root), or the shipped set."""
    if cfg.path is None:
        return SHIPPED_DATA
    p = Path(cfg.path)
    return p if p.is_absolute() else root / p


def _read_rows(path: Path) -> tuple[list[dict[str, str]], set[str]]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return rows, set(reader.fieldnames or [])
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise EdgeInputError(f"edge.data.path: {path} line {n} is not valid JSON: {err.msg}") from None
            if not isinstance(row, dict):
                raise EdgeInputError(f"edge.data.path: {path} line {n} is not a JSON object")
            rows.append({str(k): v for k, v in row.items()})
    columns = set().union(*(r.keys() for r in rows)) if rows else set()
    return rows, columns


def load_examples(cfg: EdgeDataConfig, root: Path) -> list[Example]:
    """Read and check the data file; every problem is an EdgeInputError naming the field and what is allowed.

    Args:
        cfg: the ``edge.data`` config.
        root: repo root for relative paths.

    Returns:
        The examples in file order.

    Raises:
        EdgeInputError: missing file, missing columns, empty texts, or labels that differ from ``edge.data.labels``.
    """
    path = data_path(cfg, root)
    if not path.is_file():
        raise EdgeInputError(f"edge.data.path: {path} does not exist (give a .csv or .jsonl file, or leave it unset)")
    rows, columns = _read_rows(path)
    missing = [c for c in (cfg.text_column, cfg.label_column) if c not in columns]
    if missing:
        raise EdgeInputError(
            f"edge.data: {path} has no column {', '.join(repr(m) for m in missing)}; "
            f"found {sorted(columns)}; set edge.data.text_column / label_column"
        )
    if not rows:
        raise EdgeInputError(f"edge.data.path: {path} has no rows")
    found = {str(r.get(cfg.label_column)) for r in rows}
    unknown, unused = found - set(cfg.labels), set(cfg.labels) - found
    if unknown or unused:
        raise EdgeInputError(
            f"edge.data.labels: the data's labels {sorted(found)} do not match the model's labels {cfg.labels}"
            + (f"; not in the config: {sorted(unknown)}" if unknown else "")
            + (f"; never seen in the data: {sorted(unused)}" if unused else "")
        )
    index = {name: i for i, name in enumerate(cfg.labels)}
    out = []
    for n, r in enumerate(rows, 1):
        text = str(r.get(cfg.text_column) or "").strip()
        if not text:
            raise EdgeInputError(f"edge.data.text_column: row {n} of {path} has an empty {cfg.text_column!r}")
        out.append(Example(text, index[str(r[cfg.label_column])], str(r.get("lang") or "")))
    return out


def split_examples(examples: list[Example], cfg: EdgeDataConfig, seed: int) -> dict[str, list[Example]]:
    """Shuffle with ``seed`` (optionally keep the first ``limit``) and cut train / validation / test.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.

    Raises:
        EdgeInputError: a split would be empty.
    """
    rows = list(examples)
    random.Random(seed).shuffle(rows)  # noqa: S311 - a reproducible split, not a secret
    if cfg.limit is not None:
        rows = rows[: cfg.limit]
    n_val = round(len(rows) * cfg.validation_fraction)
    n_test = round(len(rows) * cfg.test_fraction)
    if min(n_val, n_test, len(rows) - n_val - n_test) < 1:
        raise EdgeInputError(f"edge.data: {len(rows)} rows are too few to split into train/validation/test")
    return {
        "test": rows[:n_test],
        "validation": rows[n_test : n_test + n_val],
        "train": rows[n_test + n_val :],
    }


def write_splits(splits: dict[str, list[Example]], labels: list[str], out: Path) -> None:
    """Write ``<split>.jsonl`` files and ``labels.json`` into ``out``."""
    for name, rows in splits.items():
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for ex in rows:
                row = {"text": ex.text, "label": ex.label, "lang": ex.lang, "source": ex.source}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "labels.json").write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")


def read_split(dir_: Path, name: str) -> list[Example]:
    """Read one split written by :func:`write_splits`."""
    with (dir_ / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [Example(d["text"], int(d["label"]), d.get("lang", ""), d.get("source", "")) for d in map(json.loads, f)]
