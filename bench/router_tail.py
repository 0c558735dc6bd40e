"""Is a decision's p99 the router's or the machine's? ``python -m bench.router_tail [calls]``.

``bench/router.py`` times one 4 KB prompt over and over, so every call does the same work and its p99 is not a slow
prompt. This script puts a number on the rest: it times ``Router.decide`` on the 4 KB mixed English/Chinese prompt
and a pure-Python busy loop calibrated to the same length, one after the other, call by call, with the thread's CPU
clock (``time.thread_time_ns``), and prints each one's p50, p99 and p99/p50, and how many of the slowest 5% of
decisions had one of the slowest 5% of loops right next to them. A loop that allocates nothing and reads no table
having the same p99/p50 as the decision says the tail comes from the machine (other jobs, the hypervisor), not from
what the router does. Standard library only; one JSON line goes to ``bench/out/router_tail.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.router import prompt
from router.handler import Router
from router.protocol import parse_request
from router.settings import Settings

OUT = Path("bench/out/router_tail.json")


def _spin(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def _best_ns(fn: Callable[[], object], runs: int = 200) -> int:
    best = None
    for _ in range(runs):
        t0 = time.thread_time_ns()
        fn()
        took = time.thread_time_ns() - t0
        best = took if best is None else min(best, took)
    return best or 1


def _q(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[int(len(s) * p) - 1]


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    router = Router(Settings())
    body = {"model": "bank-bot", "messages": [{"role": "user", "content": prompt(4096, "mixed")}]}
    req = parse_request(json.dumps(body).encode())
    for _ in range(50):
        router.decide(req)
    n = 2000
    n = max(1, n * _best_ns(lambda: router.decide(req)) // _best_ns(lambda: _spin(n)))
    decide, loop = [], []
    for _ in range(calls):
        t0 = time.thread_time_ns()
        router.decide(req)
        decide.append((time.thread_time_ns() - t0) / 1000)
        t0 = time.thread_time_ns()
        _spin(n)
        loop.append((time.thread_time_ns() - t0) / 1000)
    slow_d = {i for i, x in enumerate(decide) if x > _q(decide, 0.95)}
    slow_l = {i for i, x in enumerate(loop) if x > _q(loop, 0.95)}
    out: dict[str, float | int | str] = {
        "utc": time.strftime("%H:%M:%S", time.gmtime()),
        "loadavg": round(os.getloadavg()[0], 2),
        "calls": calls,
        "decide_cpu_p50_us": round(_q(decide, 0.5), 1),
        "decide_cpu_p99_us": round(_q(decide, 0.99), 1),
        "loop_cpu_p50_us": round(_q(loop, 0.5), 1),
        "loop_cpu_p99_us": round(_q(loop, 0.99), 1),
        "slow_decides_next_to_slow_loops": round(len(slow_d & slow_l) / max(1, len(slow_d)), 2),
    }
    d50, d99, l50, l99 = _q(decide, 0.5), _q(decide, 0.99), _q(loop, 0.5), _q(loop, 0.99)
    print(
        f"{out['utc']} load {out['loadavg']}: decide p50 {d50:.1f} p99 {d99:.1f} (x{d99 / d50:.2f}); busy loop "
        f"p50 {l50:.1f} p99 {l99:.1f} (x{l99 / l50:.2f}); slowest 5% of decisions next to a slowest-5% loop: "
        f"{len(slow_d & slow_l) / max(1, len(slow_d)):.0%}"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
