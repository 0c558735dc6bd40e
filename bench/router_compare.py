"""Two routers side by side: ``python -m bench.router_compare --baseline DIR [--rounds N] [--plot]``.

Runs ``python -m bench.router --decision-only`` N times in this tree and N times in ``DIR`` (another checkout of the
project, e.g. ``git worktree add /tmp/base <commit>``), alternated (baseline, this tree, baseline, ...) so both see
the same phases of a shared host, each with this tree's ``bench/router.py`` (the timing code is the same; only
``router/`` differs). Prints, per tree, the median and range of the 4 KB mixed and English p50 and p99 and how many
runs had p99 ≤ :data:`TARGET_US` (issue 10's goal), and writes every run to ``bench/out/router_compare.json``.
``--plot`` then draws ``docs/benchmarks/router_p99.png`` (needs matplotlib: ``.venv-edge/bin/python``).
Standard library only otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path("bench/out/router_compare.json")
PLOT = Path("docs/benchmarks/router_p99.png")
TARGET_US = 150.0
CELLS = (("mixed", "4KB"), ("english", "4KB"), ("mixed", "256B"))


def _run(tree: Path, staged: Path) -> dict[str, Any]:
    """One ``--decision-only`` run of ``tree``'s router with the benchmark script staged in ``staged``
    (:func:`_stage`). It runs from there: ``-m`` puts the working directory first on the path, so ``bench`` is the
    staged copy and ``router`` the tree's."""
    env = os.environ | {"PYTHONPATH": str(tree.resolve()), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.router", "--decision-only"],
        cwd=staged,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _stage(bench: Path, into: Path) -> Path:
    """This tree's ``bench/router.py`` alone as a ``bench`` package in ``into`` (both trees are timed by it)."""
    (into / "bench").mkdir()
    shutil.copy(bench, into / "bench" / "router.py")
    (into / "bench" / "__init__.py").write_text("")
    return into


def summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per cell: median/min/max of p50 and p99 over the runs, and how many runs had p99 ≤ TARGET_US."""
    out = {}
    for kind, size in CELLS:
        p50 = [r[kind][size]["p50_us"] for r in runs]
        p99 = [r[kind][size]["p99_us"] for r in runs]
        out[f"{kind} {size}"] = {
            "p50_median": round(statistics.median(p50), 1),
            "p50_min": min(p50),
            "p99_median": round(statistics.median(p99), 1),
            "p99_min": min(p99),
            "p99_max": max(p99),
            "runs_p99_within_target": sum(p <= TARGET_US for p in p99),
            "runs": len(runs),
        }
    return out


def plot(data: dict[str, Any], path: Path = PLOT) -> None:
    """Each run's 4 KB mixed p99 per tree, in run order, with the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    for name, style in (("baseline", "o"), ("this tree", "s")):
        p99 = [r["mixed"]["4KB"]["p99_us"] for r in data["runs"][name]]
        ax.plot(range(1, len(p99) + 1), p99, style, label=f"{name} ({data['labels'][name]})", alpha=0.8)
    ax.axhline(TARGET_US, color="red", linestyle="--", label=f"goal: p99 ≤ {TARGET_US:.0f} µs")
    ax.set_xlabel("run (alternated with the other tree)")
    ax.set_ylabel("4 KB mixed EN/ZH decision p99 (µs)")
    ax.set_title(f"Router decision p99, {data['machine']}")
    ax.legend(fontsize=8)
    names = ["baseline", "this tree"]
    bx.boxplot([[r["mixed"]["4KB"]["p50_us"] for r in data["runs"][n]] for n in names], tick_labels=names)
    bx.set_ylabel("4 KB mixed p50 (µs)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout of the project (required unless --plot-only)")
    parser.add_argument("--rounds", type=int, default=10, help="runs per tree (default 10)")
    parser.add_argument("--label", default=None, help="what the baseline is (default: its git commit)")
    parser.add_argument("--plot", action="store_true", help=f"also draw {PLOT} (needs matplotlib)")
    parser.add_argument("--plot-only", action="store_true", help=f"draw {PLOT} from {OUT} and stop")
    args = parser.parse_args(argv)
    if args.plot_only:
        plot(json.loads(OUT.read_text()))
        print(f"wrote {PLOT}")
        return 0
    if args.baseline is None or not (args.baseline / "router" / "handler.py").is_file():
        parser.error(f"--baseline {args.baseline}: no router/handler.py there (expected a checkout of this project)")
    if not 1 <= args.rounds <= 500:
        parser.error("--rounds: expected 1-500")
    here = Path.cwd()

    def commit(tree: Path) -> str:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "router"], cwd=tree, capture_output=True, text=True)
        return (proc.stdout.strip() or "?") + ("+changes" if dirty.stdout.strip() else "")

    labels = {"baseline": args.label or commit(args.baseline), "this tree": commit(here)}
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this tree": []}
    started = time.time()
    with tempfile.TemporaryDirectory() as stage_dir:
        staged = _stage(here / "bench" / "router.py", Path(stage_dir))
        for i in range(args.rounds):
            for name, tree in (("baseline", args.baseline), ("this tree", here)):
                result = _run(tree, staged)
                result["loadavg"] = os.getloadavg()[0]
                runs[name].append(result)
            b, t = runs["baseline"][-1]["mixed"]["4KB"], runs["this tree"][-1]["mixed"]["4KB"]
            print(
                f"round {i + 1}/{args.rounds}: 4 KB mixed p50/p99 baseline {b['p50_us']}/{b['p99_us']}, "
                f"this tree {t['p50_us']}/{t['p99_us']} µs (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    data = {
        "machine": f"{_cpu_model()}, {os.cpu_count()} vCPUs, Python {platform.python_version()}",
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "labels": labels,
        "summary": {name: summary(r) for name, r in runs.items()},
        "runs": runs,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, OUT)
    print(json.dumps({"labels": labels, "summary": data["summary"]}, indent=1))
    if args.plot:
        plot(data)
        print(f"wrote {PLOT}")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
