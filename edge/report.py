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
    chain = [by[n] for n in ("teacher", "student", "onnx_int8") if n in by]
    out["chain"] = {
        r.name: {
            "test": r.accuracy,
            **{f"test_{k}": v for k, v in r.accuracy_by_lang.items()},
            "service": r.service_accuracy,
        }
        for r in chain
    }
    out["targets"] = targets(by)
    return out


def _check(goal: str, value: float | None, ok: bool | None) -> dict[str, Any]:
    return {"goal": goal, "measured": value, "met": ok}


def targets(by: dict[str, VariantResult]) -> dict[str, dict[str, Any]]:
    """The issue's done-when numbers, each with what was measured and whether it is met (None: not measured)."""
    t, s, q = by.get("teacher"), by.get("student"), by.get("onnx_int8")
    out: dict[str, dict[str, Any]] = {}
    if t:
        for lang, goal in (("en", 0.90), ("zh", 0.88)):
            v = t.accuracy_by_lang.get(lang)
            out[f"teacher_{lang}_accuracy"] = _check(f">= {goal:.0%}", v, None if v is None else v >= goal)
    if t and s:
        red = 1 - s.params / t.params
        out["student_params_reduction"] = _check(">= 40%", round(red, 4), red >= 0.40)
        sp = _ratio(t.latency_p50_ms, s.latency_p50_ms)
        out["student_speedup_p50"] = _check(">= 1.6x", sp, None if sp is None else sp >= 1.6)
        kept = _ratio(s.accuracy, t.accuracy)
        out["student_accuracy_retained"] = _check(">= 97%", kept, None if kept is None else kept >= 0.97)
    if s and q:
        drop = None if s.accuracy is None or q.accuracy is None else round(100 * (s.accuracy - q.accuracy), 2)
        out["int8_accuracy_drop_points"] = _check("<= 1 point", drop, None if drop is None else drop <= 1.0)
        sp = _ratio(s.latency_p50_ms, q.latency_p50_ms)
        out["int8_speedup_vs_pytorch_fp32"] = _check(">= 2.5x", sp, None if sp is None else sp >= 2.5)
    if s and s.service_accuracy is not None and s.accuracy is not None:
        gap = round(100 * (s.accuracy - s.service_accuracy), 2)
        out["student_service_gap_points"] = _check("within 5 points", gap, abs(gap) <= 5.0)
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


def _pct(v: float | None) -> str:
    return _fmt(v, ".2f", 100, "%")


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: data, the variant table, the chain, confusion matrices, examples, targets."""
    langs = sorted({k for r in report["variants"] for k in r["accuracy_by_lang"]})
    lines = [
        "# Edge export report",
        "",
        f"Sequence length {report['max_seq_len']}, batch 1, {report['machine']['torch_threads']} threads, "
        f"{report['machine']['platform']}, load average {_load(report['machine'])} around the timing. "
        f"Accuracy on the held-out test split ({report['test_size']} examples) and on "
        f"{report.get('service_size', 0)} hand-written customer-service sentences (never trained on).",
        "",
        "## Data",
        "",
        "| split | language | texts | positive share |",
        "|---|---|---:|---:|",
    ]
    data = report.get("data", {})
    for split in ("train", "validation", "test"):
        for lang, d in data.get(split, {}).items():
            lines.append(f"| {split} | {lang} | {d['n']:,} | {d['positive_share']:.1%} |")
    if "corpus" in data:
        c = data["corpus"]
        lines += [
            "",
            f"Corpus cleaning: {sum(c['raw'].values()):,} raw rows ({', '.join(f'{k} {v:,}' for k, v in c['raw'].items())}); "
            f"{c['merged_duplicates']:,} duplicates merged (across sources too), {c['dropped_neutral']:,} texts dropped "
            f"as neutral, {c['dropped_conflict']:,} dropped for contradictory labels; kept "
            + ", ".join(
                f"{lang} {v['negative']:,} negative / {v['positive']:,} positive" for lang, v in c["kept"].items()
            )
            + ".",
        ]
    head = "| variant | format | params | size | accuracy | " + "".join(f"{x} | " for x in langs)
    lines += [
        "",
        "## Variants",
        "",
        head + "service | Δ vs source (pts) | agreement | max abs Δlogit | p50 ms | p99 ms | gate |",
        "|---|---|---:|---:|---:|" + "---:|" * len(langs) + "---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["variants"]:
        gate = "ok" if r["gate_ok"] else "**FAIL**"
        per = "".join(f"{_pct(r['accuracy_by_lang'].get(x))} | " for x in langs)
        lines.append(
            f"| {r['name']} | {r['format']} | {r['params']:,} | {r['size_bytes'] / 1e6:.2f} MB "
            f"| {_pct(r['accuracy'])} | {per}{_pct(r.get('service_accuracy'))} "
            f"| {_fmt(r['accuracy_drop_points'], '+.2f')} | {_fmt(r['agreement'], '.1f', 100, '%')} "
            f"| {_fmt(r['max_abs_dlogit'], '.1e')} | {_fmt(r['latency_p50_ms'], '.2f')} "
            f"| {_fmt(r['latency_p99_ms'], '.2f')} | {gate} |"
        )
    by = {r["name"]: r for r in report["variants"]}
    shown = [n for n in ("teacher", "student", "onnx_int8") if n in by and by[n]["confusion_by_lang"]]
    if shown:
        lines += ["", "## Confusion matrices (held-out test; rows = true, columns = predicted; neg, pos)", ""]
        lines += ["| variant | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
        for n in shown:
            cells = [
                "[[{}, {}], [{}, {}]]".format(*(v for row in by[n]["confusion_by_lang"][x] for v in row))
                if x in by[n]["confusion_by_lang"] and len(by[n]["confusion_by_lang"][x]) == 2
                else "n/a"
                for x in langs
            ]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    examples = report.get("examples") or []
    if examples:
        names = [n for n in ("teacher", "student", "onnx_int8") if n in examples[0]]
        lines += ["", "## Example predictions (label, probability)", ""]
        lines += ["| set | lang | text | gold | " + " | ".join(names) + " |", "|---|---|---|---|" + "---|" * len(names)]
        for ex in examples:
            text = ex["text"] if len(ex["text"]) <= 70 else ex["text"][:67] + "..."
            text = text.replace("|", "\\|")
            preds = " | ".join(f"{ex[n]['label']} {ex[n]['p']:.2f}" for n in names)
            lines.append(f"| {ex['set']} | {ex['lang']} | {text} | {ex['gold']} | {preds} |")
    tg = report["summary"].get("targets", {})
    if tg:
        lines += ["", "## Against the issue's targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        for k, v in tg.items():
            met = "n/a" if v["met"] is None else ("yes" if v["met"] else "**no**")
            lines.append(f"| {k} | {v['goal']} | {v['measured']} | {met} |")
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
