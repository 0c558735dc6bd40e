"""Plot bench/out/gateway_overhead.json: p99 latency against throughput for direct, our gateway and LiteLLM.

make bench-gateway-plot      (runs with .venv-edge's matplotlib; the core venv stays without it)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

STYLE = {"direct": ("tab:gray", "o"), "gateway": ("tab:blue", "s"), "litellm": ("tab:red", "^")}


def plot(data: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, stream in zip(axes, (False, True), strict=True):
        for target, (color, marker) in STYLE.items():
            pts = sorted(
                (p for p in data["points"] if p["target"] == target and p["stream"] is stream and not p["errors"]),
                key=lambda p: p["concurrency"],
            )
            if not pts:
                continue
            ax.plot(
                [p["rps"] for p in pts],
                [p["p99_ms"] for p in pts],
                marker=marker,
                color=color,
                label=target,
            )
            for p in pts:
                ax.annotate(f"c={p['concurrency']}", (p["rps"], p["p99_ms"]), fontsize=7, alpha=0.6)
        ax.axhline(50, color="tab:green", lw=1, ls=":", label="50 ms p99 budget")
        ax.set_yscale("log")
        ax.set_xlabel("requests/s" if not stream else "streams/s")
        ax.set_ylabel("p99 latency (ms, log)")
        ax.set_title("streaming (SSE)" if stream else "JSON (non-streaming)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Proxy overhead over a {data['upstream_latency_ms']:g} ms upstream, one worker on one core "
        f"(`{data['command']}`)",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--input", type=Path, default=Path("bench/out/gateway_overhead.json"))
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/gateway_overhead.png"))
    args = ap.parse_args(argv)
    if not args.input.is_file():
        print(f"--input: {args.input} does not exist; run `make bench-gateway` first")
        return 2
    plot(json.loads(args.input.read_text(encoding="utf-8")), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
