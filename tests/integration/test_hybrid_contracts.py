"""Cross-mode contracts, with every part real: the router's targets against the real gateway and the real handler.

- local: the router's LocalTarget (key from Secrets Manager in moto server mode) -> our gateway on uvicorn -> the
  embedded engine serving the tiny model;
- cloud: the router's CloudTarget (boto3 sagemaker-runtime with an endpoint URL override) -> `inference.serve`
  running the packaged tiny model's code/inference.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from transformers import AutoTokenizer

from config.local_section import TINY_MODEL_NAME, EngineSpec, LocalConfig
from model_packages.package import build_package
from model_packages.tiny_model import build_tiny_model
from router.secrets import SecretCache
from router.targets import CloudTarget, LocalTarget
from tests.inference.conftest import start_server, stop_server
from tests.local.gateway import KEY, RunningGateway

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
CHAT: dict[str, Any] = {
    "model": TINY_MODEL_NAME,
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, how are you?"}],
    "max_tokens": 5,
    "temperature": 0.7,
    "stop": ["\n\n"],
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / TINY_MODEL_NAME)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _assert_chat_completion(body: dict[str, Any], prompt_ids: list[int]) -> None:
    """An OpenAI chat.completion whose usage counts exactly the prompt the model saw and the tokens it made."""
    assert body["object"] == "chat.completion"
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert body["usage"]["prompt_tokens"] == len(prompt_ids)
    if choice["finish_reason"] == "length":
        assert body["usage"]["completion_tokens"] == CHAT["max_tokens"]
    else:
        # "stop" means the model ended (EOS or a stop string) before the limit: a route that reports "stop" for a
        # generation cut at max_tokens (the old hard-coded finish_reason) fails here.
        assert choice["finish_reason"] == "stop"
        assert 1 <= body["usage"]["completion_tokens"] < CHAT["max_tokens"]
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_router_local_target_talks_to_the_real_gateway(model_dir: Path, moto_url: str) -> None:
    sm = boto3.client("secretsmanager", endpoint_url=moto_url, **CREDS)
    arn = sm.create_secret(Name="gateway-key", SecretString=f'{{"api_key": "{KEY}"}}')["ARN"]
    spec = EngineSpec(
        name="embedded", kind="embedded", models=[TINY_MODEL_NAME], model_dir=str(model_dir), device="cpu"
    )
    with RunningGateway(LocalConfig(embedded=spec)) as gw:
        secrets = SecretCache(
            arn, client_factory=lambda: boto3.client("secretsmanager", endpoint_url=moto_url, **CREDS)
        )
        target = LocalTarget(gw.url, secrets, timeout_s=30)
        tok = AutoTokenizer.from_pretrained(model_dir)
        prompt = tok.apply_chat_template(CHAT["messages"], add_generation_prompt=True, return_dict=True)
        _assert_chat_completion(target.complete(dict(CHAT)), prompt["input_ids"])


def test_router_cloud_target_talks_to_the_real_handler(model_dir: Path, tmp_path: Path) -> None:
    tarball, _ = build_package(str(model_dir), "tiny-gpt2", tmp_path / "dist", progress=False)
    proc: subprocess.Popen[str]
    proc, url = start_server(["--package", str(tarball), "--workdir", str(tmp_path / "serve")])
    try:
        target = CloudTarget(
            "llm-dev-tiny",
            timeout_s=30,
            default_max_tokens=16,
            client_factory=lambda: boto3.client("sagemaker-runtime", endpoint_url=url, **CREDS),
        )
        tok = AutoTokenizer.from_pretrained(model_dir)
        # The cloud target sends the messages; the handler applies the model's chat template, exactly like the local
        # route, so both routes count the same prompt tokens for the same request.
        prompt = tok.apply_chat_template(CHAT["messages"], add_generation_prompt=True, return_dict=True)
        _assert_chat_completion(target.complete(dict(CHAT)), prompt["input_ids"])
    finally:
        stop_server(proc)
