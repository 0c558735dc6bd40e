"""Soak: many concurrent streaming clients through the gateway for a fixed time, against the fake upstream.

Checks that no request is dropped (every stream ends with ``data: [DONE]``) or hung (each has a deadline), and that
the gateway's memory stays bounded (RSS before and after, and its peak).

    .venv/bin/python bench/soak.py [--clients 1000] [--duration 60]

Writes bench/out/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.gateway_overhead import KEY, STREAM_BODY, free_port, pct, wait_http

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "soak.json"
REQUEST_DEADLINE_S = 30.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(url: str, clients: int, duration_s: float, gw_pid: int, progress: Progress) -> dict[str, Any]:
    ok = dropped = hung = 0
    lat: list[float] = []
    samples: list[str] = []
    peak = rss_mib(gw_pid)
    end = time.monotonic() + duration_s
    body = STREAM_BODY.encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    task = progress.add_task("soak", total=duration_s)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_DEADLINE_S)) as s:

        async def client() -> None:
            nonlocal ok, dropped, hung
            while time.monotonic() < end:
                t0 = time.perf_counter()
                try:
                    async with s.post(url, data=body, headers=headers) as r:
                        data = await r.read()
                    if r.status == 200 and data.endswith(b"data: [DONE]\n\n"):
                        ok += 1
                        lat.append((time.perf_counter() - t0) * 1000)
                    else:
                        dropped += 1
                        if len(samples) < 5:
                            samples.append(f"HTTP {r.status}: {data[-300:]!r}")
                except TimeoutError:
                    hung += 1
                except aiohttp.ClientError as err:
                    dropped += 1
                    if len(samples) < 5:
                        samples.append(f"{err.__class__.__name__}: {err}")

        async def watch() -> None:
            nonlocal peak
            start = time.monotonic()
            while time.monotonic() < end:
                await asyncio.sleep(1)
                peak = max(peak, rss_mib(gw_pid))
                progress.update(
                    task,
                    completed=min(duration_s, time.monotonic() - start),
                    description=f"soak ok={ok} dropped={dropped} hung={hung}",
                )

        await asyncio.gather(watch(), *(client() for _ in range(clients)))
    return {
        "failure_samples": samples,
        "ok": ok,
        "dropped": dropped,
        "hung": hung,
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
        "peak_rss_mib": peak,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--chunk-ms", type=float, default=5.0, help="gap between streamed chunks")
    a = ap.parse_args()
    console = Console()
    cpus = sorted(os.sched_getaffinity(0))
    gw_cpu, load_cpu = (cpus[0], cpus[-1]) if len(cpus) > 1 else (None, None)
    up, gw = free_port(), free_port()
    py = sys.executable
    up_cmd = [
        py,
        "-m",
        "bench._fake_upstream",
        str(up),
        "--latency-ms",
        str(a.latency_ms),
        "--chunk-ms",
        str(a.chunk_ms),
    ]
    gw_cmd = [py, "-m", "bench._gateway_proc", str(gw), f"http://127.0.0.1:{up}", KEY, "--max-connections", "2048"]
    if load_cpu is not None and gw_cpu is not None:
        up_cmd += ["--cpu", str(load_cpu)]
        gw_cmd += ["--cpu", str(gw_cpu)]
        os.sched_setaffinity(0, {load_cpu})
    procs = [subprocess.Popen(up_cmd, cwd=ROOT), subprocess.Popen(gw_cmd, cwd=ROOT)]
    try:
        wait_http(f"http://127.0.0.1:{up}/health", 30)
        wait_http(f"http://127.0.0.1:{gw}/health", 60)
        url = f"http://127.0.0.1:{gw}/v1/chat/completions"
        gw_pid = procs[1].pid
        rss_before = rss_mib(gw_pid)
        cols = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*cols, console=console) as progress:
            res = asyncio.run(soak(url, a.clients, a.duration, gw_pid, progress))
        time.sleep(2)  # let closed connections be collected
        rss_after = rss_mib(gw_pid)
        metrics = aiohttp_get(f"http://127.0.0.1:{gw}/metrics")
        in_flight = next(
            (line.split()[-1] for line in metrics.splitlines() if line.startswith("llm_gateway_in_flight_requests ")),
            "?",
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    result = {
        "command": " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "clients": a.clients,
        "duration_s": a.duration,
        **res,
        "streams_per_s": res["ok"] / a.duration,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "in_flight_after": in_flight,
    }
    t = Table(title=f"soak: {a.clients} streaming clients for {a.duration:g} s")
    for k in (
        "ok",
        "dropped",
        "hung",
        "streams_per_s",
        "p50_ms",
        "p99_ms",
        "rss_before_mib",
        "peak_rss_mib",
        "rss_after_mib",
        "in_flight_after",
    ):
        v = result[k]
        t.add_row(k, f"{v:.1f}" if isinstance(v, float) else str(v))
    console.print(t)
    for sample in result["failure_samples"]:
        console.print(f"failure: {sample}", markup=False)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(OUT)
    console.print(f"wrote {OUT.relative_to(ROOT)}")
    return 0 if result["dropped"] == 0 and result["hung"] == 0 else 1


def aiohttp_get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - 127.0.0.1 only
        return str(r.read().decode())


if __name__ == "__main__":
    sys.exit(main())
