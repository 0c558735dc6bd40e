"""Fixtures: the tiny model packaged, the local container-contract server started for real, moto in server mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from moto.server import ThreadedMotoServer

from model_packages.package import build_package
from model_packages.tiny_model import build_tiny_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp() / "tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_package(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tarball, _ = build_package(str(tiny_model_dir), "tiny-gpt2", tmp_path_factory.mktemp("dist"), progress=False)
    return tarball


def start_server(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m inference.serve ARGS --port 0`` and return (process, base URL) once /ping answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "inference.serve", *args, "--port", "0"],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("serving ") and " on http://" in line:
            url = line.rsplit(" on ", 1)[1].strip()
            break
    if url is None:
        proc.kill()
        raise RuntimeError(f"inference.serve did not start (exit {proc.poll()})")
    assert requests.get(f"{url}/ping", timeout=5).status_code == 200
    return proc, url


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def served(tiny_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The packaged tiny model served from its tarball; yields the base URL."""
    workdir = tmp_path_factory.mktemp("serve")
    proc, url = start_server(
        ["--package", str(tiny_package), "--workdir", str(workdir)],
        env={"MAX_NEW_TOKENS": "32", "DEFAULT_MAX_NEW_TOKENS": "8", "MAX_BATCH_SIZE": "8"},
    )
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.delenv("AWS_PROFILE", raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def moto_url(aws_env: None) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
