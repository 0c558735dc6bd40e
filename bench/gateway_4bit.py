"""4-bit for real (issue 16): a 7B-shaped Llama (hidden 4096, 32 layers, random weights) served by the embedded engine
THROUGH the gateway in bitsandbytes NF4 and in bf16, one after the other, measured at the client with the official
openai SDK (streamed completions): weights and peak GPU memory, tok/s and TTFT at concurrency 1 and 64.

Both variants run eager (compile off, one KV bucket) so they compare like for like: the engine never compiles a 4-bit
model (``compile: auto`` falls back and logs why). Each variant's JSON is written to ``$OUT/<variant>.json`` (default
``bench/out``) as soon as it finishes, so a run cut short keeps what it measured.

    python bench/gateway_4bit.py          # on a CUDA machine with bitsandbytes==0.50.2
    python bench/gateway_4bit.py          # without CUDA: a tiny fp32 model on CPU, to check the script end to end
"""

import asyncio
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, os.getcwd())
import uvicorn
from openai import AsyncOpenAI

from bench.local_engine import ModelShape, build_model, make_prompts
from config.local_section import EngineSpec, LocalConfig
from local.app import create_app
from local.embedded.engine import EmbeddedEngine
from local.embedded.settings import EmbeddedSettings
from local.engines.embedded import EmbeddedAdapter
from local.settings import GatewaySettings

OUT = Path(os.environ.get("OUT") or Path(__file__).resolve().parent / "out")
OUT.mkdir(parents=True, exist_ok=True)
DRY = not torch.cuda.is_available()
SHAPE = (
    ModelShape(vocab=1000, hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2)
    if DRY
    else ModelShape(vocab=32000, hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32)
)
DEV = "cpu" if DRY else "cuda"
KEY, N, PROMPT, NEW = "sk-gpu-bench-000000", 64, 64, 128
t = time.time()
mdir = build_model(
    OUT / ("bench-model-tiny" if DRY else "bench-model-7b"),
    SHAPE,
    torch.device(DEV),
    torch.float32 if DRY else torch.bfloat16,
)
print("model built", round(time.time() - t, 1), "s", flush=True)
(torch.cuda.empty_cache() if not DRY else None)
prompts = make_prompts(N, PROMPT, SHAPE.vocab)


async def one_stream(client, model, prompt):
    t0 = time.perf_counter()
    first = None
    n = 0
    stream = await client.completions.create(
        model=model, prompt=prompt, max_tokens=NEW, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    async for ch in stream:
        if ch.choices and ch.choices[0].text and first is None:
            first = time.perf_counter()
        if ch.usage:
            n = ch.usage.completion_tokens
    return t0, first, time.perf_counter(), n


async def measure(url, model):
    client = AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=300)
    await one_stream(client, model, prompts[0])  # warm-up
    seq = [await one_stream(client, model, p) for p in prompts[:2]]
    t0 = time.perf_counter()
    par = await asyncio.gather(*(one_stream(client, model, p) for p in prompts))
    wall = time.perf_counter() - t0

    def rate(rs, w):
        return round(sum(r[3] for r in rs) / w, 1)

    await client.close()
    return {
        "c1_tok_s": rate(seq, sum(r[2] - r[0] for r in seq)),
        "c1_ttft_ms": round(1000 * statistics.median(r[1] - r[0] for r in seq), 1),
        f"c{N}_tok_s": rate(par, wall),
        f"c{N}_ttft_p50_ms": round(1000 * statistics.median(r[1] - r[0] for r in par), 1),
        f"c{N}_tokens": sum(r[3] for r in par),
        "sample_tokens_per_request": [r[3] for r in par[:4]],
    }


VARIANTS: list[tuple[str, dict[str, Any]]] = (
    [("fp32", {"dtype": "float32"})] if DRY else [("nf4", {"load_in_4bit": True}), ("bf16", {"dtype": "bfloat16"})]
)
for name, kw in VARIANTS:
    row: dict[str, Any] = {"variant": name}
    try:
        (torch.cuda.empty_cache() if not DRY else None)
        (torch.cuda.reset_peak_memory_stats() if not DRY else None)
        base = 0 if DRY else torch.cuda.memory_allocated()
        settings = EmbeddedSettings(
            model_dir=mdir,
            model_name=f"llama7b-{name}",
            device=DEV,
            max_batch_size=N,
            max_input_tokens=PROMPT + 8,
            max_new_tokens_limit=NEW,
            compile="off",
            kv_buckets=(256,),
            **kw,
        )
        engine = EmbeddedEngine(settings)
        spec = EngineSpec(
            name="emb",
            kind="embedded",
            models=[f"llama7b-{name}"],
            model_dir=str(mdir),
            device=DEV,
            max_batch_size=N,
            load_in_4bit=kw.get("load_in_4bit", False),
        )
        local = LocalConfig(profile="custom", engines=[spec], rate_limit={"per_key_per_s": 10000, "burst": 10000})
        app = create_app(GatewaySettings(local, api_key=KEY), [EmbeddedAdapter(spec, engine=engine)])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, loop="asyncio", access_log=False, log_level="warning"))
        th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        t = time.time()
        th.start()
        while not server.started:
            if not th.is_alive() or time.time() - t > 200:
                raise RuntimeError("gateway did not start")
            time.sleep(0.2)
        row["start_s"] = round(time.time() - t, 1)
        m = engine._model
        row["weight_gib"] = round(
            sum(x.numel() * x.element_size() for x in list(m.parameters()) + list(m.buffers())) / 2**30, 3
        )
        row["allocated_after_start_gib"] = round(((0 if DRY else torch.cuda.memory_allocated()) - base) / 2**30, 3)
        row["compiled"] = engine.compiled
        row.update(asyncio.run(measure(f"http://127.0.0.1:{port}", f"llama7b-{name}")))
        row["peak_allocated_gib"] = round(((0 if DRY else torch.cuda.max_memory_allocated()) - base) / 2**30, 3)
        row["peak_reserved_gib"] = round((0 if DRY else torch.cuda.max_memory_reserved()) / 2**30, 3)
        server.should_exit = True
        th.join(60)
        sock.close()
        del engine, app, m
    except Exception:
        import traceback

        row["error"] = traceback.format_exc()[-2500:]
    row["device"] = "cpu" if DRY else torch.cuda.get_device_name(0)
    row["torch"] = torch.__version__
    (OUT / f"{name}.json").write_text(json.dumps(row, indent=1))
    print(json.dumps(row), flush=True)
    import gc

    gc.collect()
    (torch.cuda.empty_cache() if not DRY else None)
