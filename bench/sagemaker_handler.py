"""Reference guide's SageMaker handler vs ours, through the local container-contract server, in one run.

    python -m bench.sagemaker_handler                       # GPT-2-Large architecture, random weights (GPU)
    python -m bench.sagemaker_handler --size tiny --prompts 4 --new-tokens 8     # CPU smoke run

Phases (each after a warm-up, all through inference.serve's HTTP server on 127.0.0.1 in this process):
  reference/concurrent  the guide's handler (fp32, one prompt per generate), N concurrent single-prompt requests,
                        one request at a time (one TorchServe worker). The guide never moves the model to the GPU;
                        we do, to compare handlers rather than devices.
  ours/serial           our handler, N concurrent single-prompt requests, one at a time (--serial: a TorchServe worker)
  ours/list             our handler, one request holding all N prompts (one generate)
  ours/concurrent       our handler, N concurrent single-prompt requests meeting in the core's continuous batch
  ours/shared-W-workers ENGINE_MODE=shared: W serial workers (as TorchServe runs them; threads here) feeding one engine
Our handler is the generation core (local/embedded: static KV cache, compiled decode with CUDA graphs on the GPU)
behind the toolkit functions; "generate_batch_sizes" are the sequences per decode step.
Every request asks for exactly --new-tokens tokens (min_new_tokens = max_new_tokens), so token counts match.
Writes bench/out/sagemaker_handler.json and prints a table with ratios to the reference.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inference.serve import ContainerApp, make_server  # noqa: E402
from model_packages.tiny_model import build_tiny_model  # noqa: E402

SEED = 1234
# Peak HBM bandwidth (bytes/s) by device name, for the weights-per-decode-step floor.
BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12, "A10G": 0.6e12, "L4": 0.3e12}
PROMPTS = [
    "Hello, how are you? I am fine, thank you.",
    "The quick brown fox jumps over the lazy dog.",
    "Deploy the model to SageMaker and serve it locally.",
    "What is my account balance? Please transfer money to my savings account.",
    "Explain quantum computing in simple terms.",
    "Write a Python function that sorts a list.",
    "The answer is 42.",
    "Please transfer money to my savings account and tell me the balance of my account.",
]


def build_model(size: str, workdir: Path) -> Path:
    """A random-weight model (fixed seed) with the locally trained tokenizer, saved as a SageMaker model dir."""
    from transformers import AutoModelForCausalLM, GPT2Config

    tiny = build_tiny_model(workdir / "tiny")
    if size == "tiny":
        return tiny
    out = workdir / "gpt2-large-random"
    if (out / "model.safetensors").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for f in tiny.iterdir():
        if f.name.startswith("tokenizer") or f.name.endswith(".jinja"):
            shutil.copy(f, out / f.name)
    # GPT-2-Large: 36 layers, 1280 wide, 20 heads, the real 50257-token vocabulary (tokens the tokenizer doesn't
    # know decode to nothing, which does not matter for timing).
    config = GPT2Config(
        n_embd=1280, n_layer=36, n_head=20, n_positions=1024, vocab_size=50257, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(SEED)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)  # fp32 on disk, like the hub's gpt2-large
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def reference_module(new_tokens: int) -> types.ModuleType:
    """The reference guide's inference.py, with the toolkit's default JSON input_fn/output_fn.

    Changes, all in its favour or needed to compare: AutoTokenizer (our tokenizer has no vocab.json for
    GPT2Tokenizer), the model moved to the GPU, and a fixed number of new tokens instead of max_length=100.
    """
    from transformers import AutoTokenizer, GPT2LMHeadModel

    mod = types.ModuleType("reference_inference")
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def model_fn(model_dir: str) -> dict[str, Any]:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model: Any = GPT2LMHeadModel.from_pretrained(model_dir)
        model.to(device)
        return {"model": model, "tokenizer": tokenizer}

    def input_fn(body: Any, content_type: str) -> Any:
        return json.loads(body)

    def predict_fn(data: Any, model_dict: dict[str, Any]) -> dict[str, Any]:
        input_text = data["inputs"]
        inputs = model_dict["tokenizer"](input_text, return_tensors="pt").to(device)
        outputs = model_dict["model"].generate(
            **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0
        )
        n_new = outputs.shape[1] - inputs["input_ids"].shape[1]
        return {"generated_text": model_dict["tokenizer"].decode(outputs[0]), "completion_tokens": n_new}

    def output_fn(prediction: Any, accept: str) -> str:
        return json.dumps(prediction)

    mod.model_fn = model_fn  # type: ignore[attr-defined]
    mod.input_fn = input_fn  # type: ignore[attr-defined]
    mod.predict_fn = predict_fn  # type: ignore[attr-defined]
    mod.output_fn = output_fn  # type: ignore[attr-defined]
    return mod


class Server:
    """inference.serve's HTTP server on a free port, in a thread."""

    def __init__(self, app: ContainerApp) -> None:
        self.httpd = make_server(app, "127.0.0.1", 0)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def post(port: int, payload: dict[str, Any]) -> tuple[float, Any]:
    body = json.dumps(payload).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/invocations", body, {"Content-Type": "application/json", "Accept": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - t0
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
    return elapsed, json.loads(data)


def _tokens(result: dict[str, Any] | list[dict[str, Any]]) -> int:
    if isinstance(result, list):  # a list of inputs answers one object per input
        return sum(int(r.get("completion_tokens", 0)) for r in result)
    n = result.get("completion_tokens", 0)
    return sum(n) if isinstance(n, list) else int(n)


def run_concurrent(port: int | list[int], prompts: list[str], params: dict[str, Any], desc: str) -> dict[str, Any]:
    """One client thread per prompt; with several ports, request i goes to port i mod n (like a load balancer)."""
    ports = port if isinstance(port, list) else [port]
    bar = tqdm(total=len(prompts), desc=desc, file=sys.stderr, leave=False)

    def one(i: int) -> tuple[float, dict[str, Any]]:
        p = prompts[i]
        r = post(ports[i % len(ports)], {"inputs": p, "parameters": params} if params else {"inputs": p})
        bar.update(1)
        return r

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        results = list(pool.map(one, range(len(prompts))))
    wall = time.perf_counter() - t0
    bar.close()
    return summarize(wall, [r[0] for r in results], sum(_tokens(r[1]) for r in results), len(prompts), len(prompts))


def run_list(port: int, prompts: list[str], params: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    latency, result = post(port, {"inputs": prompts, "parameters": params})
    wall = time.perf_counter() - t0
    return summarize(wall, [latency], _tokens(result), 1, len(prompts))


def summarize(wall: float, latencies: list[float], tokens: int, requests: int, prompts: int) -> dict[str, Any]:
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
    return {
        "wall_s": wall,
        "requests": requests,
        "requests_per_s": requests / wall,
        "prompts_per_s": prompts / wall,
        "output_tokens": tokens,
        "output_tokens_per_s": tokens / wall,
        "p50_latency_s": statistics.median(lat),
        "p99_latency_s": p99,
    }


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _allocated_gib() -> float | None:
    return torch.cuda.memory_allocated() / 2**30 if torch.cuda.is_available() else None


def _peak_gib() -> float | None:
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def best_of(repeats: int, fn: Any) -> dict[str, Any]:
    runs = [fn() for _ in range(repeats)]
    best = max(runs, key=lambda r: r["output_tokens_per_s"])
    best["repeats"] = repeats
    best["output_tokens_per_s_all"] = [round(r["output_tokens_per_s"], 1) for r in runs]
    return best


def run_shared_workers(
    model_dir: Path, args: argparse.Namespace, prompts: list[str], params: dict[str, Any]
) -> dict[str, Any]:
    """N serial workers (like TorchServe's) in ENGINE_MODE=shared: the first owns the model, the rest use its socket."""
    sock_dir = Path(tempfile.mkdtemp(prefix="llmd-bench-engine-"))
    os.environ.update(ENGINE_MODE="shared", ENGINE_SOCKET_DIR=str(sock_dir))
    try:
        apps = [ContainerApp(model_dir, serial=True) for _ in range(args.shared_workers)]
        servers = [Server(app) for app in apps]
        ports = [s.port for s in servers]
        run_concurrent(ports, prompts, params, "warm-up shared")
        owner = apps[0].model
        core = owner.engine.engine  # the owner's EmbeddedEngine (the others hold a socket client)
        core.decode_batch_sizes(clear=True)
        _reset_peak()
        row = best_of(args.repeats, lambda: run_concurrent(ports, prompts, params, "ours shared"))
        row["peak_gpu_gib"] = _peak_gib()
        row["generate_batch_sizes"] = _size_summary(core.decode_batch_sizes())
        for s in servers:
            s.close()
        owner.close()
        return row
    finally:
        os.environ["ENGINE_MODE"] = "local"
        shutil.rmtree(sock_dir, ignore_errors=True)


def _size_summary(sizes: list[int]) -> dict[str, Any]:
    """Sequences per decode step: the batch the continuous batcher actually ran."""
    if not sizes:
        return {"steps": 0}
    return {"steps": len(sizes), "max": max(sizes), "mean": round(statistics.fmean(sizes), 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", choices=["large", "tiny"], default="large")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the fast phases (best is reported)")
    ap.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "sagemaker_handler_model")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "sagemaker_handler.json")
    ap.add_argument("--skip-ours-serial", action="store_true", help="skip the ours/serial phase (saves time)")
    ap.add_argument(
        "--shared-workers",
        type=int,
        default=32,
        help="ENGINE_MODE=shared phase: this many serial workers (threads here, processes under TorchServe); 0 skips. "
        "Each worker has one request in flight, so this caps the coalesced batch size",
    )
    args = ap.parse_args(argv)

    os.environ.setdefault("MAX_BATCH_SIZE", str(max(32, args.prompts)))
    os.environ.setdefault("MAX_NEW_TOKENS", str(max(512, args.new_tokens)))
    prompts = [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(args.prompts)]
    params = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens}
    device_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"device: {device_name}; torch {torch.__version__}", file=sys.stderr)

    t = time.perf_counter()
    model_dir = build_model(args.size, args.workdir)
    print(f"model ready in {time.perf_counter() - t:.1f} s: {model_dir}", file=sys.stderr)
    rows: dict[str, dict[str, Any]] = {}

    # Reference handler: fp32, one prompt per generate, one request at a time.
    ref_app = ContainerApp(model_dir, serial=True, module=reference_module(args.new_tokens))
    srv = Server(ref_app)
    post(srv.port, {"inputs": prompts[0]})  # warm-up
    _reset_peak()
    rows["reference/concurrent"] = run_concurrent(srv.port, prompts, {}, "reference")
    rows["reference/concurrent"]["peak_gpu_gib"] = _peak_gib()
    srv.close()
    # Free the fp32 reference weights before measuring ours: the server's handler class still references the app,
    # so drop the model explicitly and collect, or the peak-memory numbers below would include it.
    ref_app.model = None
    del ref_app, srv
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    print(f"GPU memory allocated after freeing the reference: {_allocated_gib()}", file=sys.stderr)

    # Our handler: loaded once by model_fn, shared by the serial and the threaded server.
    ours = ContainerApp(model_dir, serial=False)
    handler = ours.model
    core = handler.engine.engine  # the EmbeddedEngine behind the toolkit functions
    loaded = core._model
    weight_bytes = sum(p.numel() * p.element_size() for p in loaded.parameters())
    params_count = sum(p.numel() for p in loaded.parameters())
    serial = None if args.skip_ours_serial else ContainerApp(model_dir, serial=True, module=ours.module, model=handler)
    srv = Server(ours)
    post(srv.port, {"inputs": prompts, "parameters": params})  # warm-up: the full batch shape once
    run_concurrent(srv.port, prompts, params, "warm-up")
    if serial is not None:
        srv_serial = Server(serial)
        _reset_peak()
        rows["ours/serial"] = run_concurrent(srv_serial.port, prompts, params, "ours serial")
        rows["ours/serial"]["peak_gpu_gib"] = _peak_gib()
        srv_serial.close()
    _reset_peak()
    rows["ours/list"] = best_of(args.repeats, lambda: run_list(srv.port, prompts, params))
    rows["ours/list"]["peak_gpu_gib"] = _peak_gib()
    _reset_peak()
    core.decode_batch_sizes(clear=True)
    rows["ours/concurrent"] = best_of(
        args.repeats, lambda: run_concurrent(srv.port, prompts, params, "ours concurrent")
    )
    rows["ours/concurrent"]["peak_gpu_gib"] = _peak_gib()
    rows["ours/concurrent"]["generate_batch_sizes"] = _size_summary(core.decode_batch_sizes())
    srv.close()
    dtype = str(handler.dtype)
    limits = handler.limits
    compiled = core.compiled
    if args.shared_workers > 1:
        # Free our local-mode copy first so the peak below is the shared engine's alone.
        handler.close()
        ours.model = handler = core = loaded = None
        if serial is not None:
            serial.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        rows[f"ours/shared-{args.shared_workers}-workers"] = run_shared_workers(model_dir, args, prompts, params)

    ref = rows["reference/concurrent"]["output_tokens_per_s"]
    bandwidth = next((bw for k, bw in BANDWIDTH.items() if k in device_name), None)
    floor: dict[str, Any] = {"weight_bytes": weight_bytes, "dtype": dtype}
    if bandwidth:
        step_s = weight_bytes / bandwidth
        floor.update(
            bandwidth_bytes_per_s=bandwidth,
            decode_step_floor_ms=step_s * 1e3,
            tokens_per_s_ceiling_at_batch=args.prompts / step_s,
        )
    for name, row in rows.items():
        row["x_reference_tokens_per_s"] = row["output_tokens_per_s"] / ref
        if bandwidth and name.startswith("ours/") and name != "ours/serial":
            # Each decode step of a batch must read every weight once: B tokens per step at best.
            row["fraction_of_floor"] = row["output_tokens_per_s"] / floor["tokens_per_s_ceiling_at_batch"]
    result = {
        "benchmark": "sagemaker_handler",
        "command": " ".join([Path(sys.executable).name, "-m", "bench.sagemaker_handler", *(argv or sys.argv[1:])]),
        "device": device_name,
        "torch": torch.__version__,
        "model": {"size": args.size, "params": params_count},
        "prompts": args.prompts,
        "new_tokens": args.new_tokens,
        "max_batch_size": limits.max_batch_size,
        "compiled_decode": compiled,
        "floor": floor,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)

    print(f"\n{device_name}, {args.size}, {args.prompts} prompts x {args.new_tokens} new tokens")
    header = f"{'phase':22} {'req/s':>8} {'prompt/s':>9} {'tok/s':>10} {'p50 s':>8} {'p99 s':>8} {'peak GiB':>9} {'x ref':>7}"
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        peak = f"{r['peak_gpu_gib']:.2f}" if r.get("peak_gpu_gib") is not None else "-"
        print(
            f"{name:22} {r['requests_per_s']:8.2f} {r['prompts_per_s']:9.2f} {r['output_tokens_per_s']:10.1f} {r['p50_latency_s']:8.3f} "
            f"{r['p99_latency_s']:8.3f} {peak:>9} {r['x_reference_tokens_per_s']:7.1f}"
        )
    if bandwidth:
        print(
            f"floor: {weight_bytes / 1e9:.2f} GB of weights / {bandwidth / 1e12:.2f} TB/s = "
            f"{floor['decode_step_floor_ms']:.3f} ms per decode step -> at most "
            f"{floor['tokens_per_s_ceiling_at_batch']:,.0f} tok/s at batch {args.prompts}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
