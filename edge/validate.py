"""Compare every variant with its source: accuracy, agreement, max |Δlogit|, parity, and the accuracy gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from config.edge_section import EdgeConfig
from edge.errors import ParityError

#: Variants that must reproduce their FP32 source within an absolute tolerance (INT8 ones are judged by agreement).
FP32_VARIANTS = ("onnx_fp32", "tflite_fp32")
OUTPUT_NAME = "logits"


@dataclass
class VariantResult:
    """One row of the report."""

    name: str
    format: str
    source: str | None
    path: str | None
    params: int
    size_bytes: int
    accuracy: float | None = None
    accuracy_drop_points: float | None = None
    agreement: float | None = None
    max_abs_dlogit: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    parity_ok: bool | None = None
    gate_ok: bool = True
    notes: list[str] = field(default_factory=list)
    #: Per-language held-out accuracy and confusion matrix ``[[true neg, false pos], [false neg, true pos]]``.
    accuracy_by_lang: dict[str, float] = field(default_factory=dict)
    confusion_by_lang: dict[str, list[list[int]]] = field(default_factory=dict)
    #: Accuracy on the hand-written customer-service set (never trained on), overall and per language.
    service_accuracy: float | None = None
    service_by_lang: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over all elements."""
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def check_parity(variant: str, reference: np.ndarray, candidate: np.ndarray, atol: float) -> float:
    """Raise if ``candidate`` logits differ from ``reference`` by more than ``atol`` anywhere.

    Returns:
        The max |Δlogit| (within tolerance).

    Raises:
        ParityError: naming the variant, the output and the difference.
    """
    if reference.shape != candidate.shape:
        raise ParityError(variant, OUTPUT_NAME, float("inf"), atol)
    diff = max_abs_diff(reference, candidate)
    if not diff <= atol:  # also catches NaN
        raise ParityError(variant, OUTPUT_NAME, diff, atol)
    return diff


def by_language(pred: np.ndarray, labels: np.ndarray, langs: list[str]) -> tuple[dict[str, float], dict[str, Any]]:
    """Accuracy and confusion matrix (rows = true class, columns = predicted) per language."""
    acc: dict[str, float] = {}
    confusion: dict[str, list[list[int]]] = {}
    n_classes = int(max(labels.max(initial=0), pred.max(initial=0))) + 1
    for lang in sorted(set(langs)):
        sel = np.array([x == lang for x in langs])
        acc[lang] = float((pred[sel] == labels[sel]).mean())
        m = np.zeros((n_classes, n_classes), dtype=int)
        np.add.at(m, (labels[sel], pred[sel]), 1)
        confusion[lang] = m.tolist()
    return acc, confusion


def score(
    result: VariantResult,
    logits: np.ndarray,
    labels: np.ndarray,
    source_logits: np.ndarray | None,
    source_accuracy: float | None,
    langs: list[str] | None = None,
) -> None:
    """Fill accuracy (overall and per language), drop vs source (points), agreement and max |Δlogit| in place."""
    pred = logits.argmax(-1)
    result.accuracy = float((pred == labels).mean())
    if langs is not None:
        result.accuracy_by_lang, result.confusion_by_lang = by_language(pred, labels, langs)
    if source_logits is not None and source_accuracy is not None:
        result.accuracy_drop_points = round(100 * (source_accuracy - result.accuracy), 4)
        result.agreement = float((pred == source_logits.argmax(-1)).mean())
        result.max_abs_dlogit = max_abs_diff(source_logits, logits)


def apply_gates(results: list[VariantResult], cfg: EdgeConfig) -> list[str]:
    """Mark each result's ``parity_ok``/``gate_ok`` and return one message per failure (empty = all pass).

    Rules: FP32 exports reproduce their source within the named atol; INT8 variants agree with it on at least
    ``int8_min_agreement`` of the test split; no variant loses more than ``accuracy_gate_points`` against its source;
    every variant (teacher included) reaches ``accuracy_floors`` per language on the held-out test split and
    ``service_accuracy_floor`` on the customer-service set.
    """
    failures = []
    for r in results:
        if r.accuracy is None:
            continue
        if r.source is not None and r.name in FP32_VARIANTS and r.max_abs_dlogit is not None:
            atol = cfg.onnx_fp32_atol if r.name == "onnx_fp32" else cfg.tflite_fp32_atol
            r.parity_ok = r.max_abs_dlogit <= atol
            if not r.parity_ok:
                failures.append(f"{r.name}: max |Δlogit| {r.max_abs_dlogit:.1e} > atol {atol:.1e} on output 'logits'")
        elif r.source is not None and r.agreement is not None and r.name != "student":
            r.parity_ok = r.agreement >= cfg.int8_min_agreement
            if not r.parity_ok:
                failures.append(
                    f"{r.name}: agrees with {r.source} on {r.agreement:.1%} of predictions "
                    f"< {cfg.int8_min_agreement:.0%} (edge.int8_min_agreement)"
                )
        drop = r.accuracy_drop_points
        if drop is not None and drop > cfg.accuracy_gate_points:
            failures.append(
                f"{r.name}: accuracy {100 * r.accuracy:.2f}% is {drop:.2f} points below {r.source}, "
                f"over the {cfg.accuracy_gate_points:g}-point gate (edge.accuracy_gate_points)"
            )
        for lang, floor in cfg.accuracy_floors.items():
            got = r.accuracy_by_lang.get(lang)
            if got is None:
                failures.append(
                    f"{r.name}: no {lang!r} examples in the test split (edge.accuracy_floors names {lang!r})"
                )
            elif got < floor:
                failures.append(
                    f"{r.name}: {lang} accuracy {100 * got:.2f}% is below the floor {100 * floor:.1f}% "
                    f"(edge.accuracy_floors.{lang})"
                )
        if r.service_accuracy is not None and r.service_accuracy < cfg.service_accuracy_floor:
            failures.append(
                f"{r.name}: customer-service accuracy {100 * r.service_accuracy:.2f}% is below the floor "
                f"{100 * cfg.service_accuracy_floor:.1f}% (edge.service_accuracy_floor)"
            )
        r.gate_ok = not any(f.startswith(f"{r.name}:") for f in failures)
    return failures
