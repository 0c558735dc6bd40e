"""Run the gateway as production does (``local.serve``'s gc tuning, uvloop, httptools) in its own process, from a
``LocalConfig`` given as JSON, so tests can measure its memory: ``python -m tests.local.subprocess_gateway PORT``
with the config on stdin."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    import uvicorn

    from config.local_section import LocalConfig
    from local.app import create_app
    from local.serve import tune_gc
    from local.settings import GatewaySettings

    port = int(sys.argv[1])
    local = LocalConfig.model_validate(json.loads(sys.stdin.read()))
    app = create_app(GatewaySettings(local, api_key=os.environ["TEST_GATEWAY_KEY"]))
    tune_gc()
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )


class GatewayProcess:
    """The gateway in a child process; ``rss()`` / ``peak()`` read its memory from /proc."""

    def __init__(self, local: Any, key: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        env = {**os.environ, "TEST_GATEWAY_KEY": key}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.local.subprocess_gateway", str(self.port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(local.model_dump_json())
        self.proc.stdin.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GatewayProcess:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("gateway process exited")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway process did not start")

    def __exit__(self, *_: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def rss(self) -> int:
        """Resident memory now, bytes."""
        return self._status("VmRSS")

    def peak(self) -> int:
        """Highest resident memory since the last :meth:`reset_peak`, bytes."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")


if __name__ == "__main__":
    main()
