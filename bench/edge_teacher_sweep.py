"""Teacher-only experiment for the edge pipeline: train the teacher with overridden settings (in a scratch cache, so
the project's own cache and outputs are untouched) and score it on the fixed held-out test split, per language.

    TOKENIZERS_PARALLELISM=false .venv-edge/bin/python bench/edge_teacher_sweep.py \
        '{"data": {"train_per_language": 3000}, "teacher": {"freeze_layers": 4}}'

Prints one JSON line: the override, training texts, wall and CPU seconds, and test accuracy per language.
"""

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rich.console import Console

from config.edge_section import EdgeConfig
from edge import pipeline as P
from edge.teacher import accuracy

ROOT = Path(__file__).resolve().parents[1]
over = json.loads(sys.argv[1])
SCRATCH = Path(tempfile.gettempdir()) / "edge-teacher-sweep"
cfg = EdgeConfig.model_validate(
    {
        "cache_dir": str(SCRATCH / "cache"),
        "out_dir": str(SCRATCH / "out"),
        "data": {"packages_dir": str(ROOT / "edge/.cache/packages"), **over.get("data", {})},
        "teacher": over.get("teacher", {}),
    }
)
ctx = P.Context(cfg=cfg, root=ROOT, console=Console(stderr=True))
P.preflight(ctx)
ctx.cache.mkdir(parents=True, exist_ok=True)
st = P.State(versions=P._versions())
t0 = time.time()
for step in (P._data, P._tokenizer, P._teacher):
    step(ctx, st)
wall = time.time() - t0
assert st.teacher is not None and st.tokenizer is not None
cpu = resource.getrusage(resource.RUSAGE_SELF)
res = {"override": over, "train": len(st.train), "wall_s": round(wall), "cpu_s": round(cpu.ru_utime + cpu.ru_stime)}
for lang in sorted({e.lang for e in st.test}):
    ex = [e for e in st.test if e.lang == lang]
    res[lang] = round(accuracy(st.teacher, ex, st.tokenizer, cfg.teacher.train_max_len), 4)
    res["n_" + lang] = len(ex)
print(json.dumps(res), flush=True)
