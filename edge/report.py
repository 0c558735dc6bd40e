"""``report.json`` / ``report.md`` / ``report.png``: one row per variant, plus the headline ratios."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from edge.validate import VariantResult


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b not in (None, 0) else None


def summarize(results: list[VariantResult]) -> dict[str, Any]:
    """Headline comparisons: student vs teacher, ONNX INT8 vs the PyTorch FP32 student it came from."""
    by = {r.name: r for r in results}
    out: dict[str, Any] = {}
    t, s = by.get("teacher"), by.get("student")
    if t and s:
        out["student_vs_teacher"] = {
            "params_reduction": round(1 - s.params / t.params, 4),
            "speedup_p50": _ratio(t.latency_p50_ms, s.latency_p50_ms),
            "accuracy_retained": _ratio(s.accuracy, t.accuracy),
        }
    q = by.get("onnx_int8")
    if s and q:
        out["onnx_int8_vs_pytorch_fp32"] = {
            "speedup_p50": _ratio(s.latency_p50_ms, q.latency_p50_ms),
            "size_ratio": _ratio(q.size_bytes, s.size_bytes),
            "accuracy_drop_points": q.accuracy_drop_points,
        }
    return out


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    import onnxruntime
    import torch

    return {
        "platform": platform.platform(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _fmt(v: float | None, spec: str, scale: float = 1.0, unit: str = "") -> str:
    return "n/a" if v is None else format(v * scale, spec) + unit


def _load(m: dict[str, Any]) -> str:
    before, after = m.get("loadavg_before"), m.get("loadavg_after")
    return f"{before[0]:.2f} -> {after[0]:.2f}" if before and after else "n/a"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table plus the summary."""
    lines = [
        "# Edge export report",
        "",
        f"Sequence length {report['max_seq_len']}, batch 1, {report['machine']['torch_threads']} threads, "
        f"{report['machine']['platform']}, load average {_load(report['machine'])} around the timing. "
        f"Accuracy on the test split ({report['test_size']} examples).",
        "",
        "| variant | format | params | size | accuracy | Δ vs source (pts) | agreement | max abs Δlogit "
        "| p50 ms | p99 ms | gate |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["variants"]:
        gate = "ok" if r["gate_ok"] else "**FAIL**"
        lines.append(
            f"| {r['name']} | {r['format']} | {r['params']:,} | {r['size_bytes'] / 1e6:.2f} MB "
            f"| {_fmt(r['accuracy'], '.2f', 100, '%')} "
            f"| {_fmt(r['accuracy_drop_points'], '+.2f')} | {_fmt(r['agreement'], '.1f', 100, '%')} "
            f"| {_fmt(r['max_abs_dlogit'], '.1e')} | {_fmt(r['latency_p50_ms'], '.2f')} "
            f"| {_fmt(r['latency_p99_ms'], '.2f')} | {gate} |"
        )
    lines += ["", "## Summary", "", "```json", json.dumps(report["summary"], indent=2), "```"]
    notes = [f"- {r['name']}: {n}" for r in report["variants"] for n in r["notes"]]
    if notes:
        lines += ["", "## Notes", "", *notes]
    if report["failures"]:
        lines += ["", "## Gate failures", "", *[f"- {f}" for f in report["failures"]]]
    return "\n".join(lines) + "\n"


def render_plot(results: list[VariantResult], path: Path) -> None:
    """Two panels sharing one legend: accuracy vs latency, and file size vs latency; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r.latency_p50_ms is not None and r.accuracy is not None]
    fig, (ax_acc, ax_size) = plt.subplots(1, 2, figsize=(12, 5))
    markers = "osD^v<>Ph*"
    for i, r in enumerate(rows):
        assert r.latency_p50_ms is not None
        assert r.accuracy is not None
        style = {"marker": markers[i % len(markers)], "s": 90, "alpha": 0.8, "color": f"C{i}"}
        label = f"{r.name} ({r.size_bytes / 1e6:.1f} MB, {r.latency_p50_ms:.1f} ms)"
        ax_acc.scatter(r.latency_p50_ms, 100 * r.accuracy, label=label, **style)
        ax_size.scatter(r.latency_p50_ms, r.size_bytes / 1e6, **style)
    ax_acc.set_xlabel("CPU latency p50 (ms, batch 1)")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("accuracy vs latency")
    ax_size.set_xlabel("CPU latency p50 (ms, batch 1)")
    ax_size.set_ylabel("file size (MB)")
    ax_size.set_title("size vs latency")
    for ax in (ax_acc, ax_size):
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
    ax_size.set_ylim(bottom=0)
    fig.legend(loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Edge variants: better is up-left on the accuracy panel, down-left on the size panel")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def write_report(report: dict[str, Any], results: list[VariantResult], out_dir: Path) -> None:
    """Write report.json, report.md and report.png into ``out_dir``."""
    _atomic_write(out_dir / "report.json", json.dumps(report, indent=2, ensure_ascii=False))
    _atomic_write(out_dir / "report.md", render_markdown(report))
    render_plot(results, out_dir / "report.png")
