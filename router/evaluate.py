"""Route a labelled file and report quality: ``python -m router.evaluate FILE.jsonl``.

Each line: ``{"text", "sensitive": bool, "complexity": "simple"|"complex", "expected_target": "local"|"cloud"}``.
Prints each misrouted or misdetected case, then as the last line one JSON object with ``n``, ``pii_recall``,
``pii_precision``, ``target_accuracy`` and ``cloud_share``. Policy and threshold come from the ``ROUTER_*``
environment (as in the Lambda) unless given as options.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router import complexity, policy
from router.detect import Detector
from router.settings import POLICIES, Settings

LABEL_KEYS = ("text", "sensitive", "complexity", "expected_target")


@dataclass(frozen=True)
class Case:
    """One labelled line."""

    line: int
    text: str
    sensitive: bool
    complexity: str
    expected_target: str


def read_cases(path: Path) -> Iterator[Case]:
    """Read and check a labelled JSONL file.

    Raises:
        ValueError: a line is not JSON or a field is missing or has a wrong value (line number and field named).
    """
    with path.open(encoding="utf-8") as fh:
        for no, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                d = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{no}: not JSON ({exc.msg})") from None
            if not isinstance(d, dict) or any(k not in d for k in LABEL_KEYS):
                raise ValueError(f"{path}:{no}: expected an object with {', '.join(LABEL_KEYS)}")
            if not isinstance(d["text"], str) or not isinstance(d["sensitive"], bool):
                raise ValueError(f"{path}:{no}: text must be a string and sensitive a boolean")
            if d["complexity"] not in ("simple", "complex"):
                raise ValueError(f"{path}:{no}: complexity must be simple or complex")
            if d["expected_target"] not in ("local", "cloud"):
                raise ValueError(f"{path}:{no}: expected_target must be local or cloud")
            yield Case(no, d["text"], d["sensitive"], d["complexity"], d["expected_target"])


@dataclass(frozen=True)
class Routed:
    """What the router decided for one case."""

    case: Case
    types: tuple[str, ...]
    score: float
    target: str
    reason: str


def route_cases(cases: Sequence[Case], settings: Settings, model: complexity.Model | None = None) -> list[Routed]:
    """Detect, score and decide each case as the Lambda would (one user message per case)."""
    detector = Detector(settings.custom_patterns, settings.custom_keywords)
    model = model or complexity.Model.load()
    out = []
    for c in cases:
        low = c.text.lower()
        types = tuple(sorted({f.type for f in detector.scan(c.text, low)}))
        score = complexity.score(complexity.features([c.text], [low]), model)
        d = policy.decide(
            sensitive_types=types,
            unscannable=False,
            score=score,
            policy=settings.policy,
            threshold=settings.complexity_threshold,
        )
        out.append(Routed(c, types, score, d.target, d.reason))
    return out


def metrics(routed: Sequence[Routed]) -> dict[str, Any]:
    """``n``, ``pii_recall``, ``pii_precision``, ``target_accuracy``, ``cloud_share`` (and the confusion counts)."""
    tp = sum(1 for r in routed if r.types and r.case.sensitive)
    fn = sum(1 for r in routed if not r.types and r.case.sensitive)
    fp = sum(1 for r in routed if r.types and not r.case.sensitive)
    n = len(routed)
    right = sum(1 for r in routed if r.target == r.case.expected_target)
    cloud = sum(1 for r in routed if r.target == policy.CLOUD)
    return {
        "n": n,
        "pii_recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "pii_precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "target_accuracy": round(right / n, 4) if n else 0.0,
        "cloud_share": round(cloud / n, 4) if n else 0.0,
        "pii_missed": fn,
        "pii_false_alarms": fp,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (2 on a bad file or option)."""
    ap = argparse.ArgumentParser(prog="python -m router.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path, help="labelled JSONL file")
    ap.add_argument("--policy", choices=POLICIES, help="override ROUTER_POLICY")
    ap.add_argument("--threshold", type=float, help="override ROUTER_COMPLEXITY_THRESHOLD (0..1)")
    args = ap.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.policy or args.threshold is not None:
            if args.threshold is not None and not 0 <= args.threshold <= 1:
                raise ValueError("--threshold: expected a number between 0 and 1")
            settings = Settings(
                **{
                    **settings.__dict__,
                    "policy": args.policy or settings.policy,
                    "complexity_threshold": settings.complexity_threshold if args.threshold is None else args.threshold,
                }
            )
        cases = list(read_cases(args.file))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    routed = route_cases(cases, settings)
    for r in routed:
        wrong_target = r.target != r.case.expected_target
        wrong_pii = bool(r.types) != r.case.sensitive
        if wrong_target or wrong_pii:
            what = []
            if wrong_pii:
                what.append("missed sensitive data" if r.case.sensitive else f"false alarm {','.join(r.types)}")
            if wrong_target:
                what.append(f"routed {r.target} ({r.reason}), expected {r.case.expected_target}")
            print(f"line {r.case.line}: {'; '.join(what)}; score {r.score:.3f}: {r.case.text[:100]!r}")
    print(json.dumps(metrics(routed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
