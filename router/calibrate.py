"""Calibrate the complexity threshold (and optionally refit the weights) from a labelled file.

``python -m router.calibrate [FILE.jsonl] [--target-cloud-share 0.3] [--fit]``

Without ``--target-cloud-share`` it picks the threshold with the best routing accuracy on the file; with it, the
threshold whose cloud share (under ``local_only``: sensitive cases never count as cloud) is closest to the target.
``--fit`` first refits the logistic weights on the ``complexity`` labels (plain gradient descent, standard library)
and rewrites ``complexity_weights.json`` (temp file, then rename). Prints the chosen threshold as the last line, in
the form the ``router:`` config section takes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from router import complexity
from router.detect import default_detector
from router.evaluate import Case, read_cases

DEFAULT_FILE = Path("tests/data/router_dev.jsonl")
FIT_STEPS = 4000
FIT_LR = 0.3
FIT_L2 = 0.01  # keeps weights small so one cue word cannot dominate


def fit(cases: Sequence[Case], start: complexity.Model) -> complexity.Model:
    """Fit the logistic model to the ``complexity`` labels (batch gradient descent with L2).

    A feature the file never exercises (e.g. conversation depth in single-message files) keeps its weight from
    ``start`` instead of decaying to zero.
    """
    xs = [complexity.features([c.text]) for c in cases]
    ys = [1.0 if c.complexity == "complex" else 0.0 for c in cases]
    unused = {k for k in complexity.FEATURES if all(x[k] == 0 for x in xs)}
    w = dict.fromkeys(complexity.FEATURES, 0.0)
    b = 0.0
    n = len(cases)
    for _ in range(FIT_STEPS):
        gw = dict.fromkeys(complexity.FEATURES, 0.0)
        gb = 0.0
        for x, y in zip(xs, ys, strict=True):
            z = b + sum(w[k] * x[k] for k in w)
            p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
            err = p - y
            gb += err
            for k in w:
                gw[k] += err * x[k]
        b -= FIT_LR * gb / n
        for k in w:
            w[k] -= FIT_LR * (gw[k] / n + FIT_L2 * w[k])
    w |= {k: start.weights[k] for k in unused}
    return complexity.Model(round(b, 4), {k: round(v, 4) for k, v in w.items()})


def save(model: complexity.Model, path: Path = complexity.WEIGHTS_FILE) -> None:
    """Write the weights file atomically."""
    data = {
        "_doc": "Logistic model over router/complexity.py features; refit with `python -m router.calibrate --fit`.",
        "bias": model.bias,
        "weights": dict(model.weights),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def choose_threshold(
    cases: Sequence[Case], model: complexity.Model, target_cloud_share: float | None
) -> tuple[float, float, float]:
    """The threshold and the accuracy and cloud share it gives (under ``local_only``).

    Returns:
        ``(threshold, target_accuracy, cloud_share)``.
    """
    detector = default_detector()
    rows = []
    for c in cases:
        sensitive = bool(detector.scan(c.text))
        rows.append((sensitive, complexity.score(complexity.features([c.text]), model), c.expected_target))
    candidates = sorted({round(s, 4) for _, s, _ in rows} | {0.5})
    best: tuple[float, float, float, float] | None = None
    for t in candidates:
        targets = ["local" if sens or s < t else "cloud" for sens, s, _ in rows]
        acc = sum(1 for tg, (_, _, exp) in zip(targets, rows, strict=True) if tg == exp) / len(rows)
        share = targets.count("cloud") / len(rows)
        # Accuracy first; with a target share, distance to it first. Ties go to the threshold nearest 0.5.
        key = (abs(share - target_cloud_share), -acc) if target_cloud_share is not None else (-acc, abs(t - 0.5))
        cand = (*key, t, acc) if len(key) == 2 else (key[0], key[1], t, acc)
        if best is None or cand[:2] < best[:2]:
            best = (cand[0], cand[1], t, acc)
    assert best is not None
    t, acc = best[2], best[3]
    share = sum(1 for sens, s, _ in rows if not sens and s >= t) / len(rows)
    return t, acc, share


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (2 on a bad file or option)."""
    ap = argparse.ArgumentParser(prog="python -m router.calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path, nargs="?", default=DEFAULT_FILE, help=f"labelled JSONL (default {DEFAULT_FILE})")
    ap.add_argument("--target-cloud-share", type=float, help="wanted fraction of requests sent to the cloud (0..1)")
    ap.add_argument("--fit", action="store_true", help="refit the weights and rewrite complexity_weights.json")
    args = ap.parse_args(argv)
    if args.target_cloud_share is not None and not 0 <= args.target_cloud_share <= 1:
        print("error: --target-cloud-share: expected a number between 0 and 1", file=sys.stderr)
        return 2
    try:
        cases = list(read_cases(args.file))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print(f"error: {args.file}: no cases", file=sys.stderr)
        return 2
    model = complexity.Model.load()
    if args.fit:
        model = fit(cases, model)
        save(model)
        print(f"wrote {complexity.WEIGHTS_FILE} (bias {model.bias}, weights {dict(model.weights)})")
    t, acc, share = choose_threshold(cases, model, args.target_cloud_share)
    print(f"threshold {t:.4f}: target_accuracy {acc:.4f}, cloud_share {share:.4f} on {len(cases)} cases")
    print(f"router:\n  complexity_threshold: {t:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
