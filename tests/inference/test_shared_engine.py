"""ENGINE_MODE=shared: worker processes of one device share one engine (one continuous batch), as TorchServe's
workers would."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from inference.inference import Handler, RequestError, input_fn, model_fn, predict_fn
from local.embedded.api import GenerationRequest
from local.embedded.errors import EmbeddedEngineError
from local.embedded.limits import read_runtime_env
from local.embedded.shared import RemoteEngine
from local.embedded.sync import SyncEngine
from tests.inference.conftest import start_server, stop_server

PARAMS = {"max_new_tokens": 4, "min_new_tokens": 4}


def _request(prompt: str) -> object:
    return input_fn(json.dumps({"inputs": prompt, "parameters": PARAMS}), "application/json")


@pytest.fixture
def shared_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # A short directory: AF_UNIX paths are limited to 107 bytes, and pytest's tmp_path under xdist is longer.
    sock_dir = Path(tempfile.mkdtemp(prefix="llmd-", dir="/tmp"))
    monkeypatch.setenv("ENGINE_MODE", "shared")
    monkeypatch.setenv("ENGINE_SOCKET_DIR", str(sock_dir))
    monkeypatch.setenv("ENGINE_CONNECT_TIMEOUT_S", "2")
    yield sock_dir
    shutil.rmtree(sock_dir, ignore_errors=True)


def _text(handler: Handler, prompt: str) -> str:
    return str(predict_fn(_request(prompt), handler)["items"][0]["generated_text"])  # type: ignore[arg-type]


def test_second_worker_uses_the_first_workers_engine(tiny_model_dir: Path, shared_env: Path) -> None:
    owner = model_fn(str(tiny_model_dir))
    other = model_fn(str(tiny_model_dir))  # same process, second lock holder attempt: like a second worker
    try:
        assert isinstance(owner.engine, SyncEngine)
        assert isinstance(other.engine, RemoteEngine)  # no second copy of the weights
        assert owner.shared is not None and owner.shared.server is not None
        assert oct(os.stat(owner.shared.server.paths.key).st_mode & 0o777) == "0o600"

        prompts = [f"Hello {i}" for i in range(6)]
        expected = [_text(owner, p) for p in prompts]
        owner.engine.engine.decode_batch_sizes(clear=True)
        barrier = threading.Barrier(6)

        def run(i: int) -> str:
            barrier.wait()
            return _text(owner if i % 2 else other, prompts[i])

        with ThreadPoolExecutor(max_workers=6) as pool:
            got = list(pool.map(run, range(6)))
        assert got == expected
        # Requests of both "workers" shared decode steps of the one engine.
        assert max(owner.engine.engine.decode_batch_sizes()) > 1
    finally:
        other.close()
        owner.close()


def test_engine_errors_cross_the_socket_typed(tiny_model_dir: Path, shared_env: Path) -> None:
    owner = model_fn(str(tiny_model_dir))
    other = model_fn(str(tiny_model_dir))
    try:
        bad = input_fn(json.dumps({"inputs": "x", "parameters": {"temperature": 5.0}}), "application/json")
        with pytest.raises(RequestError) as info:
            predict_fn(bad, other)
        assert (info.value.status_code, info.value.param) == (400, "parameters.temperature")
    finally:
        other.close()
        owner.close()


def test_engine_gone_is_a_503(tiny_model_dir: Path, shared_env: Path) -> None:
    limits = read_runtime_env()
    owner = model_fn(str(tiny_model_dir))
    assert owner.shared is not None and owner.shared.server is not None
    remote = RemoteEngine(owner.shared.server.paths, connect_timeout_s=limits.engine_connect_timeout_s)
    owner.close()  # no listener any more: a new connection cannot be made
    with pytest.raises(EmbeddedEngineError, match="did not answer within 2 s"):
        remote.generate_many([GenerationRequest(prompt="x", max_tokens=2)])


def _post(url: str, prompt: str) -> requests.Response:
    return requests.post(
        f"{url}/invocations",
        data=json.dumps({"inputs": prompt, "parameters": PARAMS}),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )


def test_two_serial_worker_processes_share_one_engine(tiny_model_dir: Path, shared_env: Path) -> None:
    """Two `inference.serve --serial` processes stand in for two TorchServe workers of one GPU."""
    env = {k: os.environ[k] for k in ("ENGINE_MODE", "ENGINE_SOCKET_DIR", "ENGINE_CONNECT_TIMEOUT_S")}
    owner_proc, owner_url = start_server(["--model-dir", str(tiny_model_dir), "--serial"], env)
    worker_proc, worker_url = start_server(["--model-dir", str(tiny_model_dir), "--serial"], env)
    try:
        prompts = [f"Explain quantum computing ({i})" for i in range(6)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(pool.map(lambda i: _post(owner_url if i % 2 else worker_url, prompts[i]), range(6)))
        assert [r.status_code for r in responses] == [200] * 6
        assert all(r.json()["completion_tokens"] == 4 for r in responses)
        # The owner dies (TorchServe would restart it): the other worker answers 503 instead of hanging or crashing.
        stop_server(owner_proc)
        r = _post(worker_url, "Hello")
        assert r.status_code == 503
        assert json.loads(r.text.split("\n", 1)[0])["error"]["code"] == "engine_unavailable"
        # A restarted worker takes the lock over and the survivor reconnects.
        owner_proc, owner_url = start_server(["--model-dir", str(tiny_model_dir), "--serial"], env)
        assert _post(worker_url, "Hello").status_code == 200
    finally:
        stop_server(worker_proc)
        stop_server(owner_proc)
