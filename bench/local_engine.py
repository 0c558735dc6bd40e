"""Embedded engine vs the reference guide's naive per-request ``generate``, same random-weight model, one run.

The model is Llama-style, ~0.84B parameters (hidden 2048, 16 layers, 32 heads / 4 KV heads, MLP 5632, vocab 32000),
bf16 on the GPU, random weights (fixed seed) and a word-level tokenizer, so every output token is one word and no
end-of-sequence token can cut a request short. Each request has a 64-token prompt and asks for 128 new tokens.

Scenarios (all streaming, timed at the client):
- naive, concurrency 1: ``model.generate`` per request, one at a time (what a FastAPI route around the guide's
  snippet does; requests queue behind each other);
- naive, 64 arriving: the same server under the 64-request arrival pattern (only the first ``--naive-requests``
  are run: it serves one request at a time, so its throughput does not change, only the queue grows);
- engine, concurrency 1 and 64 arriving at different times (uniform over ``--spread`` seconds), greedy and sampled.

Prints a table, writes ``bench/out/local_engine.json``. ``--tiny`` runs everything with a tiny model on CPU to
check the script.

    python -m bench.local_engine            # on the GPU machine
    python -m bench.local_engine --tiny     # anywhere, ~1 min

``--quant-compare`` (CUDA + bitsandbytes) instead serves a 7B-shaped Llama (hidden 4096, 32 layers, 32 heads,
MLP 11008, vocab 32000, random weights) through the engine twice, bf16 and bitsandbytes NF4 (``load_in_4bit``, the
reference guide's configuration), side by side: weight memory, peak memory, tokens/s at concurrency 1 and
``--requests`` (64), TTFT, and whether decode ran compiled. NF4 runs eager by default (the engine does not compile a
4-bit model: the reason is logged); ``--try-nf4-compile`` adds a row that asks for compile and records the fallback if
it fails. Writes the JSON to ``--out``.

    python -m bench.local_engine --quant-compare --out /tmp/out/quant.json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from local.embedded.api import GenerationRequest
from local.embedded.engine import EmbeddedEngine
from local.embedded.settings import EmbeddedSettings

OUT_DIR = Path(__file__).resolve().parent / "out"
SEED = 20261128
# Peak HBM bandwidth by product name (vendor data sheets), for the memory-bandwidth bound.
PEAK_BANDWIDTH = {"H200": 4.8e12, "H100 PCIe": 2.0e12, "H100": 3.35e12, "A100": 2.0e12}


@dataclass(frozen=True)
class ModelShape:
    """The benchmark model's dimensions."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int


FULL = ModelShape(vocab=32000, hidden=2048, intermediate=5632, layers=16, heads=32, kv_heads=4)
SEVEN_B = ModelShape(vocab=32000, hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32)
TINY = ModelShape(vocab=1000, hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2)


@dataclass
class RequestResult:
    """Client-side timings of one streamed request (seconds, relative to the scenario start)."""

    arrival: float
    first_token: float
    end: float
    tokens: int
    gaps: list[float] = field(default_factory=list)


def build_model(out: Path, shape: ModelShape, device: torch.device, dtype: torch.dtype) -> Path:
    """Write the random-weight model and a word-level tokenizer (``w0`` .. ``wN``) to ``out`` once."""
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        vocab = {f"w{i}": i for i in range(shape.vocab)}
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))  # noqa: S106 (a token, not a password)
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=4096).save_pretrained(tmp)
        config = LlamaConfig(
            vocab_size=shape.vocab,
            hidden_size=shape.hidden,
            intermediate_size=shape.intermediate,
            num_hidden_layers=shape.layers,
            num_attention_heads=shape.heads,
            num_key_value_heads=shape.kv_heads,
            max_position_embeddings=4096,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
            tie_word_embeddings=False,
        )
        torch.manual_seed(SEED)
        with device:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        model.generation_config.eos_token_id = None
        model.generation_config.bos_token_id = None
        model.generation_config.pad_token_id = None
        model.save_pretrained(tmp)
        del model
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def make_prompts(n: int, length: int, vocab: int) -> list[str]:
    """``n`` prompts of exactly ``length`` word tokens each."""
    rng = random.Random(SEED)
    return [" ".join(f"w{rng.randrange(vocab)}" for _ in range(length)) for _ in range(n)]


def arrivals(n: int, spread: float) -> list[float]:
    """Sorted arrival offsets, uniform over ``[0, spread]``, the first at 0."""
    rng = random.Random(SEED + 1)
    times = sorted(rng.uniform(0, spread) for _ in range(n))
    return [t - times[0] for t in times]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summarize(name: str, results: list[RequestResult], wall: float) -> dict[str, Any]:
    """Throughput and latency percentiles of one scenario."""
    tokens = sum(r.tokens for r in results)
    ttft = [r.first_token - r.arrival for r in results]
    e2e = [r.end - r.arrival for r in results]
    gaps = [g for r in results for g in r.gaps]
    return {
        "scenario": name,
        "requests": len(results),
        "output_tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 1) if wall > 0 else 0.0,
        "ttft_p50_ms": round(1000 * statistics.median(ttft), 1),
        "ttft_p99_ms": round(1000 * percentile(ttft, 99), 1),
        "latency_p50_ms": round(1000 * statistics.median(e2e), 1),
        "latency_p99_ms": round(1000 * percentile(e2e, 99), 1),
        "inter_token_p50_ms": round(1000 * statistics.median(gaps), 2) if gaps else None,
        "inter_token_p99_ms": round(1000 * percentile(gaps, 99), 2) if gaps else None,
    }


# ---- naive: the guide's per-request generate --------------------------------------------------------------------
class _TimingStreamer:
    """A transformers streamer that only timestamps tokens (the first ``put`` is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        return None


class NaiveServer:
    """One model, one request at a time: ``model.generate`` for each request, as in the reference guide."""

    def __init__(self, model_dir: Path, device: torch.device, dtype: torch.dtype) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
        self.model = model.to(device).eval()  # type: ignore[arg-type]
        self.device = device
        self._lock = threading.Lock()

    def generate(self, prompt: str, new_tokens: int) -> list[float]:
        """Run one request; return the wall-clock time of every generated token."""
        with self._lock:
            inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
            streamer = _TimingStreamer()
            self.model.generate(
                **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, streamer=streamer
            )
            return streamer.times

    def close(self) -> None:
        del self.model


async def run_naive(
    server: NaiveServer, prompts: list[str], offsets: list[float], new_tokens: int, desc: str
) -> dict[str, Any]:
    """Clients arriving at ``offsets`` against the naive server (served in a worker thread, one at a time)."""
    t0 = time.perf_counter()
    bar = tqdm(total=len(prompts), desc=desc, leave=False)

    async def client(prompt: str, offset: float) -> RequestResult:
        await asyncio.sleep(max(0.0, t0 + offset - time.perf_counter()))
        start = time.perf_counter()
        times = await asyncio.to_thread(server.generate, prompt, new_tokens)
        bar.update(1)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return RequestResult(start - t0, times[0] - t0, times[-1] - t0, len(times), gaps)

    results = await asyncio.gather(*(client(p, o) for p, o in zip(prompts, offsets, strict=True)))
    bar.close()
    return summarize(desc, list(results), max(r.end for r in results) - min(r.arrival for r in results))


async def run_naive_sequential(server: NaiveServer, prompts: list[str], new_tokens: int, desc: str) -> dict[str, Any]:
    """Concurrency 1: each request starts when the previous one ended."""
    t0 = time.perf_counter()
    results = []
    for prompt in tqdm(prompts, desc=desc, leave=False):
        start = time.perf_counter()
        times = await asyncio.to_thread(server.generate, prompt, new_tokens)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        results.append(RequestResult(start - t0, times[0] - t0, times[-1] - t0, len(times), gaps))
    return summarize(desc, results, results[-1].end - results[0].arrival)


# ---- the embedded engine ----------------------------------------------------------------------------------------
async def _engine_client(
    engine: EmbeddedEngine, request: GenerationRequest, t0: float, offset: float, bar: tqdm[Any] | None
) -> RequestResult:
    await asyncio.sleep(max(0.0, t0 + offset - time.perf_counter()))
    start = time.perf_counter()
    stamps: list[float] = []
    tokens = 0
    async for chunk in engine.stream(request):
        stamps.append(time.perf_counter())
        if chunk.finish_reason is not None:
            tokens = chunk.completion_tokens
    if bar is not None:
        bar.update(1)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return RequestResult(start - t0, stamps[0] - t0, stamps[-1] - t0, tokens, gaps)


def _request(prompt: str, new_tokens: int, sampled: bool, seed: int) -> GenerationRequest:
    if sampled:
        return GenerationRequest(prompt=prompt, max_tokens=new_tokens, temperature=0.8, top_p=0.95, seed=seed)
    return GenerationRequest(prompt=prompt, max_tokens=new_tokens, temperature=0.0)


async def run_engine(
    engine: EmbeddedEngine,
    prompts: list[str],
    offsets: list[float],
    new_tokens: int,
    sampled: bool,
    desc: str,
    rounds: int = 1,
) -> dict[str, Any]:
    """One client per prompt, arriving at its offset, then sending ``rounds`` requests back to back.

    The clients stay staggered, so requests keep joining a batch that is already decoding (continuous batching).
    """
    t0 = time.perf_counter()
    bar = tqdm(total=len(prompts) * rounds, desc=desc, leave=False)

    async def client(i: int, prompt: str, offset: float) -> list[RequestResult]:
        done = []
        for r in range(rounds):
            start = offset if r == 0 else time.perf_counter() - t0
            done.append(await _engine_client(engine, _request(prompt, new_tokens, sampled, i + r), t0, start, bar))
        return done

    per_client = await asyncio.gather(*(client(i, p, o) for i, (p, o) in enumerate(zip(prompts, offsets, strict=True))))
    bar.close()
    results = [r for rs in per_client for r in rs]
    return summarize(desc, results, max(r.end for r in results) - min(r.arrival for r in results))


async def run_engine_sequential(
    engine: EmbeddedEngine, prompts: list[str], new_tokens: int, desc: str
) -> dict[str, Any]:
    """Concurrency 1."""
    t0 = time.perf_counter()
    results = []
    for i, prompt in enumerate(tqdm(prompts, desc=desc, leave=False)):
        offset = time.perf_counter() - t0
        results.append(await _engine_client(engine, _request(prompt, new_tokens, False, i), t0, offset, None))
    return summarize(desc, results, results[-1].end - results[0].arrival)


# ---- the memory-bandwidth bound ---------------------------------------------------------------------------------
def bandwidth_bound(
    model_dir: Path, shape: ModelShape, batch: int, context: float, device: torch.device
) -> dict[str, Any]:
    """Tokens/s no decoder can beat at ``batch``: every step reads all weights once plus each row's KV cache."""
    from safetensors import safe_open

    total = embed = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                t = f.get_slice(name)
                numel = 1
                for d in t.get_shape():
                    numel *= d
                total += numel
                if "embed_tokens" in name:
                    embed += numel
    bytes_per_param = 2  # bf16
    weight_bytes = (total - embed) * bytes_per_param  # a decode step gathers only `batch` embedding rows
    head_dim = shape.hidden // shape.heads
    kv_bytes_per_token = shape.layers * 2 * shape.kv_heads * head_dim * bytes_per_param
    step_bytes = weight_bytes + batch * context * kv_bytes_per_token
    result: dict[str, Any] = {
        "params": total,
        "bytes_read_per_step": step_bytes,
        "batch": batch,
        "mean_context_tokens": context,
    }
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((bw for key, bw in PEAK_BANDWIDTH.items() if key in name), None)
        measured = measure_copy_bandwidth(device)
        result["gpu"] = name
        result["measured_copy_bandwidth_GBps"] = round(measured / 1e9, 1)
        result["bound_tokens_per_s_measured_bw"] = round(batch * measured / step_bytes)
        if peak:
            result["peak_bandwidth_GBps"] = peak / 1e9
            result["bound_tokens_per_s_peak_bw"] = round(batch * peak / step_bytes)
    return result


def measure_copy_bandwidth(device: torch.device, size_bytes: int = 2 * 1024**3) -> float:
    """Achievable device memory bandwidth (read + write of a large copy), bytes/s."""
    src = torch.empty(size_bytes // 2, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize(device)
    reps = 10
    start = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    del src, dst
    return 2 * size_bytes * reps / elapsed


# ---- driver -----------------------------------------------------------------------------------------------------
def print_table(rows: list[dict[str, Any]], baseline: dict[str, float]) -> None:
    """One line per scenario; ``x naive`` compares with the naive run at the same concurrency."""
    head = (
        f"{'scenario':<34}{'req':>5}{'tok/s':>10}{'x naive':>9}{'TTFT p50':>10}{'TTFT p99':>10}"
        f"{'lat p99':>10}{'ITL p99':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        base = baseline.get(r["scenario"].split(" ")[-1])
        ratio = f"{r['tokens_per_s'] / base:.1f}" if base and not r["scenario"].startswith("naive") else "-"
        itl = r["inter_token_p99_ms"] if r["inter_token_p99_ms"] is not None else "-"
        print(
            f"{r['scenario']:<34}{r['requests']:>5}{r['tokens_per_s']:>10}{ratio:>9}{r['ttft_p50_ms']:>10}"
            f"{r['ttft_p99_ms']:>10}{r['latency_p99_ms']:>10}{itl:>9}"
        )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    shape = TINY if args.tiny else FULL
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model_dir = build_model(OUT_DIR / ("bench-model-tiny" if args.tiny else "bench-model-0.84b"), shape, device, dtype)
    prompts = make_prompts(args.requests, args.prompt_tokens, shape.vocab)
    offsets = arrivals(args.requests, args.spread)
    rows: list[dict[str, Any]] = []
    record: dict[str, Any] = {
        "command": "python -m bench.local_engine " + " ".join(args.argv),
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "python": platform.python_version(),
        },
        "model": asdict(shape),
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "arrival_spread_s": args.spread,
        "engine_rounds_per_client": args.rounds,
    }

    naive = NaiveServer(model_dir, device, dtype)
    naive.generate(prompts[0], 4)  # warm-up (CUDA context, cuBLAS)
    k = min(args.naive_requests, args.requests)
    rows.append(await run_naive_sequential(naive, prompts[:k], args.new_tokens, "naive c=1"))
    rows.append(await run_naive(naive, prompts[:k], offsets[:k], args.new_tokens, f"naive c={args.requests}"))
    naive.close()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    context = args.prompt_tokens + args.new_tokens
    settings = EmbeddedSettings(
        model_dir=model_dir,
        device=device.type,
        max_batch_size=args.requests,
        max_input_tokens=args.prompt_tokens,
        max_new_tokens_limit=args.new_tokens,
        kv_buckets=(context,) if args.single_bucket else None,
        compile=args.compile,
    )
    engine = EmbeddedEngine(settings)
    started = time.perf_counter()
    try:
        await engine.start()
    except Exception as exc:  # a compile failure on some torch build must still leave eager numbers
        if settings.compile == "off":
            raise
        record["compile_error"] = repr(exc)[:2000]
        print(f"compiled start failed ({exc!r}); retrying eager")
        settings = settings.model_copy(update={"compile": "off"})
        engine = EmbeddedEngine(settings)
        await engine.start()
    record["engine_start_s"] = round(time.perf_counter() - started, 1)
    record["engine_compiled"] = engine.compiled
    if engine.compile_error:
        record["compile_error"] = engine.compile_error
    # Warm-up round: every prefill batch shape and the decode graphs see traffic before timing.
    await run_engine(engine, prompts, [0.0] * len(prompts), 8, False, "engine warm-up")
    rows.append(await run_engine_sequential(engine, prompts[:k], args.new_tokens, "engine c=1"))
    for sampled in (False, True):
        name = f"engine {'sampled' if sampled else 'greedy'} c={args.requests}"
        rows.append(await run_engine(engine, prompts, offsets, args.new_tokens, sampled, name, args.rounds))
    await engine.stop()

    record["results"] = rows
    record["bandwidth_bound"] = bandwidth_bound(model_dir, shape, args.requests, context - args.new_tokens / 2, device)
    baseline = {r["scenario"].split(" ")[-1]: r["tokens_per_s"] for r in rows if r["scenario"].startswith("naive")}
    print_table(rows, baseline)
    print(json.dumps(record["bandwidth_bound"], indent=2))
    return record


# ---- bf16 vs NF4 ------------------------------------------------------------------------------------------------
def quant_preflight() -> str | None:
    """Why ``--quant-compare`` cannot run here (None when it can)."""
    import importlib.util

    if not torch.cuda.is_available():
        return "--quant-compare needs a CUDA GPU (bitsandbytes NF4 kernels are CUDA-only); torch sees none"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "--quant-compare needs bitsandbytes (pip install bitsandbytes==0.50.2, a manylinux wheel)"
    return None


def _weight_bytes(model: Any) -> int:
    """Bytes held by parameters and buffers (bitsandbytes' packed uint8 storage counts as what it is)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


async def _quant_variant(
    name: str, model_dir: Path, args: argparse.Namespace, prompts: list[str], offsets: list[float], **overrides: Any
) -> dict[str, Any]:
    device = torch.device("cuda")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    settings = EmbeddedSettings(
        model_dir=model_dir,
        device="cuda",
        max_batch_size=args.requests,
        max_input_tokens=args.prompt_tokens,
        max_new_tokens_limit=args.new_tokens,
        **overrides,
    )
    engine = EmbeddedEngine(settings)
    started = time.perf_counter()
    await engine.start()
    model = engine._model
    row: dict[str, Any] = {
        "variant": name,
        "load_in_4bit": settings.load_in_4bit,
        "compile_requested": settings.compile,
        "compiled": engine.compiled,
        "compile_error": engine.compile_error,
        "start_s": round(time.perf_counter() - started, 1),
        "weight_gib": round(_weight_bytes(model) / 2**30, 3),
        "allocated_after_start_gib": round((torch.cuda.memory_allocated(device) - base) / 2**30, 3),
    }
    await run_engine(engine, prompts, [0.0] * len(prompts), 8, False, f"{name} warm-up")
    k = min(args.naive_requests, len(prompts))
    row["c1"] = await run_engine_sequential(engine, prompts[:k], args.new_tokens, f"{name} c=1")
    row[f"c{args.requests}"] = await run_engine(
        engine, prompts, offsets, args.new_tokens, False, f"{name} c={args.requests}", args.rounds
    )
    row["peak_gib"] = round((torch.cuda.max_memory_allocated(device) - base) / 2**30, 3)
    await engine.stop()
    del engine, model
    torch.cuda.empty_cache()
    return row


async def main_quant(args: argparse.Namespace) -> dict[str, Any]:
    """bf16 vs NF4 on the 7B-shaped model, one run."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    shape = SEVEN_B
    device = torch.device("cuda")
    print("building the 7B-shaped random model (once; ~13 GB on disk) ...", flush=True)
    model_dir = build_model(OUT_DIR / "bench-model-7b", shape, device, torch.bfloat16)
    prompts = make_prompts(args.requests, args.prompt_tokens, shape.vocab)
    offsets = arrivals(args.requests, args.spread)
    variants: list[tuple[str, dict[str, Any]]] = [("bf16", {}), ("nf4", {"load_in_4bit": True})]
    if args.try_nf4_compile:
        variants.append(("nf4 compile=on", {"load_in_4bit": True, "compile": "on"}))
    rows = []
    for name, overrides in variants:
        try:
            rows.append(await _quant_variant(name, model_dir, args, prompts, offsets, **overrides))
        except Exception as exc:  # one variant failing must not lose the others' numbers
            rows.append({"variant": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        print(json.dumps(rows[-1], indent=2), flush=True)
    import bitsandbytes

    record = {
        "command": "python -m bench.local_engine " + " ".join(args.argv),
        "machine": {
            "device": torch.cuda.get_device_name(device),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "bitsandbytes": bitsandbytes.__version__,
        },
        "model": asdict(shape),
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "requests": args.requests,
        "variants": rows,
    }
    head = f"{'variant':<18}{'weights GiB':>12}{'peak GiB':>10}{'c=1 tok/s':>11}{'c=N tok/s':>11}{'TTFT p50':>10}{'compiled':>9}"
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{r['variant']:<18} failed: {r['error'][:100]}")
            continue
        many = r[f"c{args.requests}"]
        print(
            f"{r['variant']:<18}{r['weight_gib']:>12}{r['peak_gib']:>10}{r['c1']['tokens_per_s']:>11}"
            f"{many['tokens_per_s']:>11}{many['ttft_p50_ms']:>10}{r['compiled']!s:>9}"
        )
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--tiny", action="store_true", help="tiny model on CPU (script check)")
    ap.add_argument("--requests", type=int, default=64, help="concurrent requests (and batch slots)")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--spread", type=float, default=0.5, help="arrivals spread uniformly over this many seconds")
    ap.add_argument("--rounds", type=int, default=3, help="requests each engine client sends back to back")
    ap.add_argument("--naive-requests", type=int, default=4, help="requests run through the naive server")
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--single-bucket", action="store_true", help="one attention-length bucket (one compile)")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "local_engine.json")
    ap.add_argument("--quant-compare", action="store_true", help="7B-shaped model, bf16 vs NF4 (CUDA + bitsandbytes)")
    ap.add_argument("--try-nf4-compile", action="store_true", help="with --quant-compare: also NF4 with compile=on")
    args = ap.parse_args(argv)
    args.argv = argv if argv is not None else __import__("sys").argv[1:]
    if args.quant_compare:
        problem = quant_preflight()
        if problem:
            print(f"error: {problem}", file=__import__("sys").stderr)
            return 2
    record = asyncio.run(main_quant(args) if args.quant_compare else main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
