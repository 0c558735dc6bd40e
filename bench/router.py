"""Router benchmark: decision latency at 256 B / 4 KB / 64 KB, cold import time, quality on the dev set.

``python -m bench.router`` prints a table and writes ``bench/out/router.json``. ``--decision-only`` prints only the
decision latencies as one JSON line (standard library only), so the same script can time an older ``router/``
checked out next to it (see docs/benchmarks/router.md for the side-by-side command).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

try:
    from tqdm import tqdm
except ImportError:  # the decision benchmark also runs on a bare machine with only the standard library

    def tqdm(it, **_kw):
        return it


from router import complexity
from router.handler import Router
from router.lexicon import shared as shared_lexicon
from router.protocol import parse_request
from router.settings import Settings
from router.textview import TextView

SIZES = {"256B": 256, "4KB": 4096, "64KB": 65536}
RUNS = {"256B": 3000, "4KB": 2000, "64KB": 200}
IMPORT_RUNS = 7
OUT = Path("bench/out/router.json")
DEV = Path("tests/data/router_dev.jsonl")
# Bank customer-service text, English and Chinese, with look-alikes (rates, amounts, versions, hotline) but no PII,
# so every detector runs its full pass and nothing short-circuits.
BASES = {
    "mixed": (
        "Hello, I have been a customer of your bank for many years and I really appreciate the service at the branch. "
        "我想咨询一下信用卡的年费政策，还有积分兑换的规则。The interest rate is 3.85% and my limit is 50,000 CNY. "
        "Could you tell me the opening hours of the branch on Saturday? 另外，手机银行的转账限额是多少？ Version 2.3.1 "
        "of the app, hotline 95588, order ORD20231128001234. "
    ),
    "english": (
        "Hello, I have been a customer of your bank for many years and I really appreciate the service at the branch. "
        "I would like to ask about the annual fee of the credit card and the rules for redeeming points. The interest "
        "rate is 3.85% and my limit is 50,000 USD. Could you tell me the opening hours of the branch on Saturday? "
        "Also, what is the transfer limit in the mobile app? Version 2.3.1 of the app, hotline 95588, order "
        "ORD20231128001234. "
    ),
}


def prompt(size: int, kind: str = "mixed") -> str:
    """A prompt of ``size`` UTF-8 bytes (at most) made of the ``kind`` base text."""
    base = BASES[kind]
    text = base * (size // len(base.encode()) + 1)
    while len(text.encode()) > size:
        text = text[:-1]
    return text


def decision_latency(router: Router, kind: str) -> dict[str, dict[str, float]]:
    out = {}
    for label, size in tqdm(SIZES.items(), desc=f"decision latency ({kind})"):
        req = parse_request(
            json.dumps({"model": "bank-bot", "messages": [{"role": "user", "content": prompt(size, kind)}]}).encode()
        )
        for _ in range(20):
            router.decide(req)
        samples, cpu = [], []
        for _ in range(RUNS[label]):
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            router.decide(req)
            samples.append((time.perf_counter_ns() - t0) / 1000)
            cpu.append((time.thread_time_ns() - c0) / 1000)
        samples.sort()
        cpu.sort()
        out[label] = {
            "bytes": size,
            "p50_us": round(statistics.median(samples), 1),
            "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
            # CPU time of this thread: what the decision costs, without the time the scheduler gave other jobs
            # (on a shared, loaded box the wall-clock p99 is a time slice, not the router). Includes the ~1 µs
            # of one clock_gettime(CLOCK_THREAD_CPUTIME_ID) call.
            "cpu_p50_us": round(statistics.median(cpu), 1),
            "cpu_p99_us": round(cpu[int(len(cpu) * 0.99) - 1], 1),
        }
    return out


def _p50_us(fn: Callable[[], object], runs: int) -> float:
    for _ in range(20):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return round(statistics.median(samples), 1)


def stage_breakdown(router: Router, kind: str, label: str = "4KB") -> dict[str, float]:
    """p50 of each stage of ``Router.decide`` on one prompt: where the time goes (the views stage includes the wide
    view, ``TextView.wide``, that the word pass and the canonical view read in a non-ASCII text)."""
    text = prompt(SIZES[label], kind)
    req = parse_request(json.dumps({"model": "bank-bot", "messages": [{"role": "user", "content": text}]}).encode())
    view = TextView.of(text)
    words = shared_lexicon().words(view)
    runs = RUNS[label]

    def views() -> TextView:  # as a decision builds them: the byte views, and the wide view of a non-ASCII text
        v = TextView.of(text)
        if not v.ascii:
            v.wide()
        return v

    return {
        "views_us": _p50_us(views, runs),
        "word_pass_us": _p50_us(lambda: shared_lexicon().words(view), runs),
        # as Decider.decide calls it: the word pass's presence words too (without them the canonical view looks the
        # number words and at-spellings up again, ~30 µs at 4 KB that a decision never spends)
        "detection_us": _p50_us(
            lambda: router.detector.scan(text, hits=(words.en, words.other), view=view, present=words.present), runs
        ),
        "scoring_us": _p50_us(
            lambda: complexity.score(complexity.features([text], words=[words], views=[view]), router.model), runs
        ),
        "decide_us": _p50_us(lambda: router.decide(req), runs),
    }


def import_time_ms() -> dict[str, float]:
    totals = []
    for _ in tqdm(range(IMPORT_RUNS), desc="cold import"):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import router.handler"],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},
        )
        line = [x for x in proc.stderr.splitlines() if re.search(r"\|\s+router\.handler$", x)][-1]
        totals.append(int(line.split("|")[1]) / 1000)
    boto = subprocess.run(
        [sys.executable, "-c", "import sys, router.handler; print('boto3' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "median_ms": round(statistics.median(totals), 1),
        "max_ms": round(max(totals), 1),
        "boto3_imported": boto == "True",
    }


def quality() -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "router.evaluate", str(DEV)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_means(router: Router) -> dict[str, float]:
    """Per text and size, the best of 15 repeats of the mean ``decide`` time (µs): the figure least moved by other
    jobs on a shared box, for comparing two versions of ``router/`` run alternately."""
    out = {}
    for kind in BASES:
        for label, size in SIZES.items():
            body = {"model": "bank-bot", "messages": [{"role": "user", "content": prompt(size, kind)}]}
            req = parse_request(json.dumps(body).encode())
            n = max(1, RUNS[label] // 25)
            router.decide(req)
            best = min(timeit.repeat(functools.partial(router.decide, req), number=n, repeat=15))
            out[f"{kind} {label}"] = round(best / n * 1e6, 1)
    return out


def main() -> None:
    router = Router(Settings())
    if "--best-means" in sys.argv[1:]:
        print(json.dumps({"loadavg": os.getloadavg()[0], "best_mean_us": best_means(router)}))
        return
    if "--decision-only" in sys.argv[1:]:
        print(json.dumps({kind: decision_latency(router, kind) for kind in BASES}))
        return
    lat = {kind: decision_latency(router, kind) for kind in BASES}
    stages = {kind: stage_breakdown(router, kind) for kind in tqdm(BASES, desc="stages at 4 KB")}
    imp = import_time_ms()
    q = quality()
    print(
        f"\n{'text':>8} {'prompt':>6} {'p50 µs':>9} {'p99 µs':>9} {'cpu p50':>9} {'cpu p99':>9} {'p50 / 256B':>11}  "
        f"{'µs per KB (p50)':>15}"
    )
    for kind, rows in lat.items():
        base = rows["256B"]["p50_us"]
        for label, r in rows.items():
            per_kb = r["p50_us"] / (r["bytes"] / 1024)
            print(
                f"{kind:>8} {label:>6} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f} {r['cpu_p50_us']:>9.1f} "
                f"{r['cpu_p99_us']:>9.1f} {r['p50_us'] / base:>11.1f}  {per_kb:>15.1f}"
            )
    print("\nwhere the time goes at 4 KB (p50 µs; detection and scoring reuse the views and the word pass):")
    for kind, st in stages.items():
        print(
            f"{kind:>8}  views {st['views_us']:.1f}  word pass {st['word_pass_us']:.1f}  detection "
            f"{st['detection_us']:.1f}  scoring {st['scoring_us']:.1f}  decide {st['decide_us']:.1f}"
        )
    print(
        f"cold import of router.handler: median {imp['median_ms']} ms, max {imp['max_ms']} ms (boto3 imported: {imp['boto3_imported']})"
    )
    print(f"dev set: {json.dumps(q)}")
    result = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
        },
        "decision": lat,
        "stages_4kb": stages,
        "import": imp,
        "quality": q,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
