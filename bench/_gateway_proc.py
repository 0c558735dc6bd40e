"""Run our gateway over one OpenAI upstream, as the benchmarks configure it (auth, rate limits, validation and
metrics all on; one uvicorn worker on uvloop + httptools).

    python -m bench._gateway_proc PORT UPSTREAM_URL KEY [--cpu N]
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from config.local_section import EngineSpec, LocalConfig
from local.app import create_app
from local.serve import tune_gc
from local.settings import GatewaySettings


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("upstream")
    p.add_argument("key")
    p.add_argument("--cpu", type=int, default=None)
    p.add_argument("--max-connections", type=int, default=512)
    a = p.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    engine = EngineSpec(name="fake", kind="vllm", base_url=a.upstream, models=["m"], max_connections=a.max_connections)
    # A real per-key bucket, set high enough that the benchmark measures the cost of checking it, not throttling.
    local = LocalConfig(profile="custom", engines=[engine], rate_limit={"per_key_per_s": 1_000_000, "burst": 1_000_000})
    app = create_app(GatewaySettings(local, api_key=a.key))
    tune_gc()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=a.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
