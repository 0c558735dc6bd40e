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
from bench.edge_scratch import run_steps
from edge.teacher import accuracy

over = json.loads(sys.argv[1])
t0 = time.time()
cfg, st = run_steps(Path(tempfile.gettempdir()) / "edge-teacher-sweep", over, ("data", "tokenizer", "teacher"))
wall = time.time() - t0
assert st.teacher is not None and st.tokenizer is not None
cpu = resource.getrusage(resource.RUSAGE_SELF)
res = {"override": over, "train": len(st.train), "wall_s": round(wall), "cpu_s": round(cpu.ru_utime + cpu.ru_stime)}
for lang in sorted({e.lang for e in st.test}):
    ex = [e for e in st.test if e.lang == lang]
    res[lang] = round(accuracy(st.teacher, ex, st.tokenizer, cfg.teacher.train_max_len), 4)
    res["n_" + lang] = len(ex)
print(json.dumps(res), flush=True)
