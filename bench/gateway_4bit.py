"""4-bit for real (issue 16): random-weight Llama shapes served by the embedded engine THROUGH the gateway, measured at
the client with the official openai SDK (streamed completions): weights and peak GPU memory, tok/s and TTFT.

Two modes, each case's JSON written to ``$OUT/<case>.json`` (default ``bench/out``) as soon as it finishes, so a run
cut short keeps what it measured:

- default: a 7B shape (hidden 4096, 32 layers) in bitsandbytes NF4 and in bf16, one after the other, at concurrency 1
  and 64. The NF4 engine asks for ``compile: auto`` and runs eager (the engine never compiles a 4-bit model and logs
  why); bf16 runs eager too so the two compare like for like. ``BENCH_COMPILED=1`` adds a compiled bf16 case.
- ``--sizing``: held-out cases for the memory estimate (``local.embedded.memory.Footprint``), other shapes, batch sizes
  and context lengths than the default run it was calibrated on. Each row records the estimate BEFORE the engine starts
  and the measured peak after a full batch of full-length prompts.

    python bench/gateway_4bit.py [--sizing]   # on a CUDA machine with bitsandbytes==0.50.2
    python bench/gateway_4bit.py [--sizing]   # without CUDA: a tiny fp32 model on CPU, to check the script end to end
"""

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, os.getcwd())
import uvicorn
from openai import AsyncOpenAI

from bench.local_engine import SEVEN_B, TINY, ModelShape, build_model, make_prompts
from config.local_section import EngineSpec, LocalConfig
from local.app import create_app
from local.embedded.engine import EmbeddedEngine
from local.embedded.loading import footprint, resolve_placement
from local.embedded.settings import EmbeddedSettings
from local.engines.embedded import EmbeddedAdapter
from local.settings import GatewaySettings

OUT = Path(os.environ.get("OUT") or Path(__file__).resolve().parent / "out")
MODELS = Path(os.environ.get("BENCH_MODEL_DIR") or tempfile.gettempdir())  # the checkpoints stay out of $OUT
DRY = not torch.cuda.is_available()
DEV = "cpu" if DRY else "cuda"
KEY = "sk-gpu-bench-000000"
TINYLLAMA = ModelShape(vocab=32000, hidden=2048, intermediate=5632, layers=22, heads=32, kv_heads=4)
THIRTEEN_B = ModelShape(vocab=32000, hidden=5120, intermediate=13824, layers=40, heads=40, kv_heads=40)


@dataclasses.dataclass(frozen=True)
class Case:
    """One engine to start and drive: a shape, a precision and the engine's batch/context settings."""

    name: str
    shape: ModelShape
    engine: dict[str, Any]
    batch: int
    prompt: int
    new: int


def default_cases() -> list[Case]:
    if DRY:
        return [Case("fp32", TINY, {"dtype": "float32", "compile": "off"}, 64, 64, 128)]
    cases = [
        # nf4 asks for compile "auto": the engine falls back to eager for 4-bit and logs why (item 1)
        Case("nf4", SEVEN_B, {"load_in_4bit": True, "compile": "auto"}, 64, 64, 128),
        Case("bf16", SEVEN_B, {"dtype": "bfloat16", "compile": "off"}, 64, 64, 128),
    ]
    if os.environ.get("BENCH_COMPILED"):
        cases.append(Case("bf16-compiled", SEVEN_B, {"dtype": "bfloat16", "compile": "on"}, 64, 64, 128))
    return cases


def sizing_cases() -> list[Case]:
    if DRY:
        return [Case("sizing-fp32", TINY, {"dtype": "float32", "compile": "off"}, 8, 200, 16)]
    nf4, bf16 = {"load_in_4bit": True, "compile": "off"}, {"dtype": "bfloat16", "compile": "off"}
    return [
        Case("sizing-7b-nf4-b8-ctx2048", SEVEN_B, nf4, 8, 1900, 64),
        Case("sizing-1b-nf4-b32-ctx1024", TINYLLAMA, nf4, 32, 960, 64),
        Case("sizing-1b-bf16-b32-ctx1024", TINYLLAMA, bf16, 32, 960, 64),
        Case("sizing-13b-nf4-b16-ctx512", THIRTEEN_B, nf4, 16, 448, 64),
    ]


async def one_stream(client: AsyncOpenAI, model: str, prompt: str, new: int) -> tuple[float, float, float, int]:
    t0 = time.perf_counter()
    first = None
    n = 0
    stream = await client.completions.create(
        model=model, prompt=prompt, max_tokens=new, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    async for ch in stream:
        if ch.choices and ch.choices[0].text and first is None:
            first = time.perf_counter()
        if ch.usage:
            n = ch.usage.completion_tokens
    return t0, first or time.perf_counter(), time.perf_counter(), n


def peak_gib() -> float:
    return 0.0 if DRY else torch.cuda.max_memory_allocated() / 2**30


async def measure(url: str, model: str, case: Case, prompts: list[str]) -> dict[str, Any]:
    client = AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=600)
    await one_stream(client, model, prompts[0], case.new)  # warm-up
    seq = [await one_stream(client, model, p, case.new) for p in prompts[:2]]
    peak_c1 = peak_gib()
    t0 = time.perf_counter()
    par = await asyncio.gather(*(one_stream(client, model, p, case.new) for p in prompts))
    wall = time.perf_counter() - t0
    await client.close()

    def rate(rs: list[tuple[float, float, float, int]], w: float) -> float:
        return round(sum(r[3] for r in rs) / w, 1)

    return {
        "c1_tok_s": rate(seq, sum(r[2] - r[0] for r in seq)),
        "c1_ttft_ms": round(1000 * statistics.median(r[1] - r[0] for r in seq), 1),
        f"c{case.batch}_tok_s": rate(par, wall),
        f"c{case.batch}_ttft_p50_ms": round(1000 * statistics.median(r[1] - r[0] for r in par), 1),
        f"c{case.batch}_tokens": sum(r[3] for r in par),
        "peak_c1_allocated_gib_abs": round(peak_c1, 3),
    }


def run_case(case: Case) -> dict[str, Any]:
    row: dict[str, Any] = {
        "variant": case.name,
        "settings": {
            "max_batch_size": case.batch,
            "kv_tokens_per_seq": case.prompt + 8 + case.new,
            "shape": dataclasses.asdict(case.shape),
            "engine": case.engine,
        },
    }
    t = time.time()
    mdir = build_model(
        MODELS / f"bench-model-{case.shape.hidden}x{case.shape.layers}-{case.shape.kv_heads}kv",
        case.shape,
        torch.device(DEV),
        torch.float32 if DRY else torch.bfloat16,
    )
    row["model_build_s"] = round(time.time() - t, 1)
    model = f"llama-{case.name}"
    if not DRY:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    base = 0 if DRY else torch.cuda.memory_allocated()
    row["base_allocated_gib"] = round(base / 2**30, 3)
    settings = EmbeddedSettings(
        model_dir=mdir,
        model_name=model,
        device=DEV,
        max_batch_size=case.batch,
        max_input_tokens=case.prompt + 8,
        max_new_tokens_limit=case.new,
        kv_buckets=(case.prompt + 8 + case.new,),
        **case.engine,
    )
    need = footprint(settings, resolve_placement(settings))
    if need is not None:  # written before the engine starts: the estimate cannot see the measurement
        row["estimate"] = {
            "weights_gib": round(need.weights_gib, 3),
            "kv_gib": round(need.kv_gib, 3),
            "total_gib": round(need.total_gib, 3),
        }
    engine = EmbeddedEngine(settings)
    spec = EngineSpec(
        name="emb",
        kind="embedded",
        models=[model],
        model_dir=str(mdir),
        device=DEV,
        max_batch_size=case.batch,
        load_in_4bit=case.engine.get("load_in_4bit", False),
    )
    local = LocalConfig(profile="custom", engines=[spec], rate_limit={"per_key_per_s": 10000, "burst": 10000})
    app = create_app(GatewaySettings(local, api_key=KEY), [EmbeddedAdapter(spec, engine=engine)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, loop="asyncio", access_log=False, log_level="warning"))
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t = time.time()
    th.start()
    try:
        while not server.started:
            if not th.is_alive() or time.time() - t > 300:
                raise RuntimeError("gateway did not start within 300 s")
            time.sleep(0.2)
        row["start_s"] = round(time.time() - t, 1)
        m = engine._model
        row["param_and_buffer_gib"] = round(  # bitsandbytes' absmax lives in quant_state: not counted here
            sum(x.numel() * x.element_size() for x in list(m.parameters()) + list(m.buffers())) / 2**30, 3
        )
        row["allocated_after_start_gib"] = round(((0 if DRY else torch.cuda.memory_allocated()) - base) / 2**30, 3)
        row["compiled"] = engine.compiled
        prompts = make_prompts(case.batch, case.prompt, case.shape.vocab)
        port = sock.getsockname()[1]
        row.update(asyncio.run(measure(f"http://127.0.0.1:{port}", model, case, prompts)))
        row["peak_allocated_gib"] = round(((0 if DRY else torch.cuda.max_memory_allocated()) - base) / 2**30, 3)
        row["peak_reserved_gib"] = round((0 if DRY else torch.cuda.max_memory_reserved()) / 2**30, 3)
    finally:
        server.should_exit = True
        th.join(60)
        sock.close()
        del engine, app
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizing", action="store_true", help="held-out cases for the memory estimate")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for case in sizing_cases() if args.sizing else default_cases():
        try:
            row = run_case(case)
        except Exception:
            row = {"variant": case.name, "error": traceback.format_exc()[-2500:]}
        row["device"] = "cpu" if DRY else torch.cuda.get_device_name(0)
        row["torch"] = torch.__version__
        (OUT / f"{case.name}.json").write_text(json.dumps(row, indent=1))
        print(json.dumps(row), flush=True)
        gc.collect()
        if not DRY:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
