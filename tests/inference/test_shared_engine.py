"""ENGINE_MODE=shared: worker processes of one device share one GPU loop, as TorchServe's workers would."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from inference.inference import (
    EngineUnavailableError,
    Limits,
    MicroBatcher,
    RemoteEngine,
    input_fn,
    model_fn,
    predict_fn,
)
from tests.inference.conftest import start_server, stop_server

PARAMS = {"max_new_tokens": 4, "min_new_tokens": 4}


def _request(prompt: str) -> object:
    return input_fn(json.dumps({"inputs": prompt, "parameters": PARAMS}), "application/json")


@pytest.fixture
def shared_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    sock_dir = tmp_path / "engine"
    sock_dir.mkdir()
    monkeypatch.setenv("ENGINE_MODE", "shared")
    monkeypatch.setenv("ENGINE_SOCKET_DIR", str(sock_dir))
    monkeypatch.setenv("ENGINE_CONNECT_TIMEOUT_S", "2")
    monkeypatch.setenv("BATCH_WINDOW_MS", "50")
    monkeypatch.setenv("BATCH_MAX_WAIT_MS", "500")
    return sock_dir


def test_second_worker_uses_the_first_workers_engine(tiny_model_dir: Path, shared_env: Path) -> None:
    owner = model_fn(str(tiny_model_dir))
    other = model_fn(str(tiny_model_dir))  # same process, second lock holder attempt: like a second worker
    assert isinstance(owner.batcher, MicroBatcher)
    assert isinstance(other.batcher, RemoteEngine)
    assert other.model is None  # no second copy of the weights
    assert owner.engine_server is not None
    assert oct(os.stat(owner.engine_server.paths.key).st_mode & 0o777) == "0o600"

    prompts = [f"Hello {i}" for i in range(6)]
    expected = [predict_fn(_request(p), owner)["generated_text"][0] for p in prompts]
    owner.batcher.batch_sizes.clear()
    barrier = threading.Barrier(6)

    def run(i: int) -> str:
        barrier.wait()
        handler = owner if i % 2 else other
        return str(predict_fn(_request(prompts[i]), handler)["generated_text"][0])

    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(run, range(6)))
    assert got == expected
    assert max(owner.batcher.batch_sizes) > 1  # requests of both "workers" shared a generate call
    assert sum(owner.batcher.batch_sizes) == 6
    owner.engine_server.close()


def test_engine_gone_is_a_503(tiny_model_dir: Path, shared_env: Path) -> None:
    limits = Limits.from_env()
    owner = model_fn(str(tiny_model_dir))
    assert owner.engine_server is not None
    remote = RemoteEngine(owner.engine_server.paths, connect_timeout_s=limits.engine_connect_timeout_s)
    owner.engine_server.close()  # no listener any more: a new connection cannot be made
    with pytest.raises(EngineUnavailableError) as info:
        remote.submit((4, 4, False, 1.0, None), [[1, 2, 3]])
    assert info.value.status_code == 503
    assert "did not answer within 2 s" in str(info.value)


def test_bad_engine_mode_names_the_variable() -> None:
    with pytest.raises(ValueError, match="ENGINE_MODE: 'gpu' is not allowed"):
        Limits.from_env({"ENGINE_MODE": "gpu"})


def _post(url: str, prompt: str) -> requests.Response:
    return requests.post(
        f"{url}/invocations",
        data=json.dumps({"inputs": prompt, "parameters": PARAMS}),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )


def test_two_serial_worker_processes_share_one_engine(tiny_model_dir: Path, shared_env: Path) -> None:
    """Two `inference.serve --serial` processes stand in for two TorchServe workers of one GPU."""
    env = {
        k: os.environ[k] for k in ("ENGINE_MODE", "ENGINE_SOCKET_DIR", "ENGINE_CONNECT_TIMEOUT_S", "BATCH_WINDOW_MS")
    }
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
