"""Plot the memory estimate against the H200 measurements (tests/data/gpu_4bit_h200.json) into
docs/benchmarks/gpu_4bit_sizing.png. Needs matplotlib (in .venv-edge):

    .venv-edge/bin/python bench/plot_gpu_4bit.py
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tests.config.test_sizing_measured import ROWS, estimate

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "gpu_4bit_sizing.png"
labels = [r["variant"].removeprefix("sizing-") + ("\n(held out)" if r["run"].startswith("held") else "") for r in ROWS]
est = [estimate(r).total_gib for r in ROWS]
alloc = [r["peak_allocated_gib"] for r in ROWS]
res = [r["peak_reserved_gib"] for r in ROWS]
x = range(len(ROWS))
fig, ax = plt.subplots(figsize=(10, 4.2))
w = 0.27
ax.bar([i - w for i in x], est, w, label="estimate (weights + KV cache + 0.6 GiB)")
ax.bar(list(x), alloc, w, label="measured peak allocated")
ax.bar([i + w for i in x], res, w, label="measured peak reserved")
ax.set_xticks(list(x), labels, fontsize=8)
ax.set_ylabel("GiB")
ax.set_title("Embedded engine GPU memory: estimate vs H200 measurement (through the gateway)")
ax.legend(fontsize=8)
fig.tight_layout()
tmp = OUT.with_suffix(".tmp.png")
fig.savefig(tmp, dpi=110)
tmp.replace(OUT)
print("wrote", OUT)
