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


def score(
    result: VariantResult,
    logits: np.ndarray,
    labels: np.ndarray,
    source_logits: np.ndarray | None,
    source_accuracy: float | None,
) -> None:
    """Fill accuracy, drop vs source (points), agreement and max |Δlogit| of ``result`` in place."""
    pred = logits.argmax(-1)
    result.accuracy = float((pred == labels).mean())
    if source_logits is not None and source_accuracy is not None:
        result.accuracy_drop_points = round(100 * (source_accuracy - result.accuracy), 4)
        result.agreement = float((pred == source_logits.argmax(-1)).mean())
        result.max_abs_dlogit = max_abs_diff(source_logits, logits)


def apply_gates(results: list[VariantResult], cfg: EdgeConfig) -> list[str]:
    """Mark each result's ``parity_ok``/``gate_ok`` and return one message per failure (empty = all pass).

    Rules: FP32 exports reproduce their source within the named atol; INT8 variants agree with it on at least
    ``int8_min_agreement`` of the test split; no variant loses more than ``accuracy_gate_points`` against its source.
    """
    failures = []
    for r in results:
        if r.source is None or r.accuracy is None:
            continue
        if r.name in FP32_VARIANTS and r.max_abs_dlogit is not None:
            atol = cfg.onnx_fp32_atol if r.name == "onnx_fp32" else cfg.tflite_fp32_atol
            r.parity_ok = r.max_abs_dlogit <= atol
            if not r.parity_ok:
                failures.append(f"{r.name}: max |Δlogit| {r.max_abs_dlogit:.1e} > atol {atol:.1e} on output 'logits'")
        elif r.agreement is not None and r.name != "student":
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
        r.gate_ok = not any(f.startswith(f"{r.name}:") for f in failures)
    return failures
