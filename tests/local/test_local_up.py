"""`make local-up` / `local-down` end to end: bootstrap builds the smoke-test model, starts the gateway in the
background, the openai client gets an answer with the generated key, and `down` stops it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from config.local_section import TINY_MODEL_NAME
from tests.local.fakes import closed_port

ROOT = Path(__file__).resolve().parents[2]


def bootstrap(action: str, run_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.bootstrap", action, "--run-dir", str(run_dir), "--ready-timeout", "120"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_local_up_serves_the_embedded_model_and_down_stops_it(tmp_path: Path) -> None:
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
    env |= {"LLM_GATEWAY_PORT": str(port), "LLM_GATEWAY_MODEL_DIR": str(tmp_path / "models" / TINY_MODEL_NAME)}
    run_dir = tmp_path / "run"
    try:
        up = bootstrap("up", run_dir, env)
        assert up.returncode == 0, up.stdout + up.stderr + (run_dir / "gateway.log").read_text()
        key = (run_dir / "api_key").read_text().strip()
        assert f"Bearer {key}" in up.stdout and "from openai import OpenAI" in up.stdout
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=60)
        out = client.chat.completions.create(
            model=TINY_MODEL_NAME, messages=[{"role": "user", "content": "Hello"}], max_tokens=4
        )
        assert out.choices[0].message.content is not None and out.usage and out.usage.completion_tokens >= 1
        again = bootstrap("up", run_dir, env)
        assert again.returncode == 0 and "already running" in again.stdout
        assert key not in (run_dir / "gateway.log").read_text()  # the key never reaches the log
    finally:
        down = bootstrap("down", run_dir, env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not (run_dir / "gateway.pid").exists()
    assert "not running" in bootstrap("down", run_dir, env).stdout
