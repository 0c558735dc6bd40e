"""Gateway overhead: the same fake upstream (fixed latency) called directly, through our gateway and through the
LiteLLM proxy, in one run; streaming and not; closed-loop load at a sweep of concurrencies.

Reports added p50/p99 latency at concurrency 1, 64 and 256, time to first chunk, and the highest request rate whose
p99 stays within 50 ms. The gateway and LiteLLM are pinned to CPU 0; the upstream and the load generator share CPU 1.

    .venv/bin/python bench/gateway_overhead.py [--litellm .venv-bench/bin/litellm] [--duration 3] [--quick]

Writes bench/out/gateway_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "gateway_overhead.json"
KEY = "sk-bench-0123456789"
P99_BUDGET_MS = 50.0
REPORT_CONCURRENCY = (1, 64, 256)
SWEEP = (1, 16, 32, 48, 64, 96, 128, 192, 256)
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Say ok sixteen times."}], "max_tokens": 16})
STREAM_BODY = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "Say ok sixteen times."}], "max_tokens": 16, "stream": True}
)


@dataclass
class Point:
    target: str
    stream: bool
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    ttfc_p50_ms: float | None
    ttfc_p99_ms: float | None
    # CPU time the proxy process spent per request (gateway/LiteLLM only): less sensitive to other load on the host.
    proxy_cpu_us_per_request: float | None = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def wait_http(url: str, timeout_s: float, headers: dict[str, str] | None = None) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - 127.0.0.1 only
            with urllib.request.urlopen(req, timeout=2) as r:  # noqa: S310
                if r.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up within {timeout_s:.0f} s")


async def load(
    url: str, stream: bool, concurrency: int, duration_s: float, headers: dict[str, str], proxy_pid: int | None = None
) -> Point:
    """Closed loop: ``concurrency`` workers send back-to-back requests for ``duration_s`` (after a short warm-up)."""
    lat: list[float] = []
    ttfc: list[float] = []
    errors = 0
    body = (STREAM_BODY if stream else BODY).encode()
    hdrs = {"Content-Type": "application/json", **headers}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    warm_end = time.perf_counter() + min(0.5, duration_s / 4)
    end = warm_end + duration_s
    measured = 0
    cpu_start = cpu_end = 0.0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def sample_cpu() -> None:
            nonlocal cpu_start, cpu_end
            if proxy_pid is None:
                return
            await asyncio.sleep(max(0.0, warm_end - time.perf_counter()))
            cpu_start = cpu_seconds(proxy_pid)
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            cpu_end = cpu_seconds(proxy_pid)

        async def worker() -> None:
            nonlocal errors, measured
            while True:
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                first = None
                try:
                    async with session.post(url, data=body, headers=hdrs) as r:
                        if stream:
                            async for _ in r.content.iter_any():
                                if first is None:
                                    first = time.perf_counter()
                        else:
                            await r.read()
                        ok = r.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                t1 = time.perf_counter()
                if t0 < warm_end:
                    continue
                if t1 <= end:
                    measured += 1
                if not ok:
                    errors += 1
                    continue
                lat.append((t1 - t0) * 1000)
                if first is not None:
                    ttfc.append((first - t0) * 1000)

        await asyncio.gather(sample_cpu(), *(worker() for _ in range(concurrency)))
    n = len(lat)
    cpu_us = (cpu_end - cpu_start) * 1e6 / measured if proxy_pid is not None and measured else None
    return Point(
        "",
        stream,
        concurrency,
        n,
        errors,
        n / duration_s,
        pct(lat, 0.5),
        pct(lat, 0.99),
        pct(ttfc, 0.5) if stream else None,
        pct(ttfc, 0.99) if stream else None,
        None if cpu_us is None else round(cpu_us, 1),
    )


def start(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def litellm_config(tmp: Path, upstream: str) -> Path:
    cfg = tmp / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - model_name: m\n"
        "    litellm_params:\n"
        "      model: openai/m\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-upstream\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
        "general_settings:\n"
        f"  master_key: {KEY}\n"
    )
    return cfg


def litellm_command(cli: str, tmp: Path, upstream: str, port: int) -> list[str]:
    cfg = litellm_config(tmp, upstream)
    return [cli, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]


def version_of(cli: str) -> str | None:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    out = subprocess.run([str(Path(cli).parent / "python"), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--litellm", default=str(ROOT / ".venv-bench/bin/litellm"), help="litellm CLI ('' to skip)")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per load point")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true", help="concurrency 1, 64, 256 only")
    ap.add_argument("--targets", default="direct,gateway,litellm", help="comma-separated subset to run")
    ap.add_argument("--litellm-max-concurrency", type=int, default=64, help="LiteLLM sweep stops here (it saturates)")
    a = ap.parse_args()
    console = Console()
    cpus = sorted(os.sched_getaffinity(0))
    proxy_cpu, load_cpu = (cpus[0], cpus[-1]) if len(cpus) > 1 else (None, None)
    pin = [] if proxy_cpu is None else ["taskset", "-c", str(proxy_cpu)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    py = sys.executable
    up_cmd = [py, "-m", "bench._fake_upstream", str(up_port), "--latency-ms", str(a.latency_ms)]
    if load_cpu is not None:
        up_cmd += ["--cpu", str(load_cpu)]
        os.sched_setaffinity(0, {load_cpu})
    wanted = [t for t in a.targets.split(",") if t]
    litellm_version = None
    if "litellm" in wanted and not (a.litellm and Path(a.litellm).exists()):
        console.print("[yellow]LiteLLM not installed (make .venv-bench/.stamp); skipping it[/]")
        wanted.remove("litellm")
    elif "litellm" in wanted:
        litellm_version = version_of(a.litellm)
    sweep = REPORT_CONCURRENCY if a.quick else SWEEP
    jobs = [
        (t, s, c)
        for t in wanted
        for s in (False, True)
        for c in sweep
        if not (t == "litellm" and c > a.litellm_max_concurrency and c not in REPORT_CONCURRENCY)
    ]
    points: list[Point] = []
    upstream_proc = start(up_cmd)
    try:
        wait_http(f"{upstream}/health", 30)
        with Progress(console=console) as progress:
            task = progress.add_task("load points", total=len(jobs))
            # One proxy at a time on the proxy CPU, so an idle one never competes with the one being measured.
            for target in wanted:
                port = free_port()
                headers = {"Authorization": f"Bearer {KEY}"}
                proc = None
                if target == "direct":
                    url, headers = f"{upstream}/v1/chat/completions", {}
                elif target == "gateway":
                    proc = start([*pin, py, "-m", "bench._gateway_proc", str(port), upstream, KEY], log=tmp / "gw.log")
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    wait_http(f"http://127.0.0.1:{port}/health", 60)
                else:
                    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
                    proc = start([*pin, *litellm_command(a.litellm, tmp, upstream, port)], env=env, log=tmp / "ll.log")
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    wait_http(f"http://127.0.0.1:{port}/health/liveliness", 240)
                try:
                    for t, stream, conc in jobs:
                        if t != target:
                            continue
                        progress.update(task, description=f"{target} {'stream' if stream else 'json'} c={conc}")
                        pid = proc.pid if proc is not None else None  # taskset execs the proxy: same pid
                        p = asyncio.run(load(url, stream, conc, a.duration, headers, pid))
                        p.target = target
                        points.append(p)
                        progress.advance(task)
                finally:
                    if proc is not None:
                        stop(proc)
    finally:
        stop(upstream_proc)
    summary = summarise(points)
    show(console, points, summary)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "upstream_latency_ms": a.latency_ms,
        "duration_s_per_point": a.duration,
        "litellm_version": litellm_version,
        "summary": summary,
        "points": [asdict(p) for p in points],
    }
    tmp_out = OUT.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(result, indent=2))
    tmp_out.replace(OUT)
    console.print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


def summarise(points: list[Point]) -> dict[str, dict[str, float | None]]:
    """Per target and mode: added latency vs direct at each reported concurrency, and max rps within the budget."""
    by = {(p.target, p.stream, p.concurrency): p for p in points}
    out: dict[str, dict[str, float | None]] = {}
    for p in points:
        key = f"{p.target}/{'stream' if p.stream else 'json'}"
        row = out.setdefault(key, {})
        d = by.get(("direct", p.stream, p.concurrency))
        if p.concurrency in REPORT_CONCURRENCY and d is not None:
            row[f"added_p50_ms_c{p.concurrency}"] = round(p.p50_ms - d.p50_ms, 3)
            row[f"added_p99_ms_c{p.concurrency}"] = round(p.p99_ms - d.p99_ms, 3)
            if p.stream and p.ttfc_p50_ms is not None and d.ttfc_p50_ms is not None:
                row[f"added_ttfc_p50_ms_c{p.concurrency}"] = round(p.ttfc_p50_ms - d.ttfc_p50_ms, 3)
        if p.errors == 0 and p.p99_ms <= P99_BUDGET_MS:
            row["max_rps_within_p99_budget"] = max(row.get("max_rps_within_p99_budget") or 0.0, round(p.rps, 1))
        row.setdefault("max_rps_within_p99_budget", None)
    return out


def show(console: Console, points: list[Point], summary: dict[str, dict[str, float | None]]) -> None:
    t = Table(title="load points (ms)")
    for col in ("target", "mode", "conc", "req/s", "p50", "p99", "ttfc p50", "ttfc p99", "errors", "proxy cpu us/req"):
        t.add_column(col, justify="right")
    for p in points:
        t.add_row(
            p.target,
            "stream" if p.stream else "json",
            str(p.concurrency),
            f"{p.rps:.0f}",
            f"{p.p50_ms:.2f}",
            f"{p.p99_ms:.2f}",
            "" if p.ttfc_p50_ms is None else f"{p.ttfc_p50_ms:.2f}",
            "" if p.ttfc_p99_ms is None else f"{p.ttfc_p99_ms:.2f}",
            str(p.errors),
            "" if p.proxy_cpu_us_per_request is None else f"{p.proxy_cpu_us_per_request:.0f}",
        )
    console.print(t)
    s = Table(title=f"summary: added vs direct, and max req/s with p99 <= {P99_BUDGET_MS:g} ms")
    s.add_column("target/mode")
    keys = sorted({k for row in summary.values() for k in row})
    for k in keys:
        s.add_column(k.replace("_", " "), justify="right")
    for name, row in summary.items():
        if name.startswith("direct"):
            continue
        s.add_row(name, *["" if row.get(k) is None else f"{row[k]:g}" for k in keys])
    d = summary.get("direct/json", {}).get("max_rps_within_p99_budget")
    console.print(s)
    console.print(
        f"direct (upstream + load generator ceiling): {d} req/s json, {summary.get('direct/stream', {}).get('max_rps_within_p99_budget')} streams/s"
    )


if __name__ == "__main__":
    sys.exit(main())
