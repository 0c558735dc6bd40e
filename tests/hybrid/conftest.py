"""Real servers on 127.0.0.1 for the hybrid tests: both entry points (the router Lambda's handler and the gateway's
``hybrid`` model on uvicorn) over one on-prem engine (the fake vLLM server replaying recorded vLLM answers,
tests/local/fakes.py) and one sagemaker-runtime (tests/sagemaker_runtime.py, real event-stream framing) that boto3
talks to for both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from config.local_section import LocalConfig
from config.router_section import RouterConfig, router_environment
from router.handler import Router
from router.secrets import SecretCache
from router.settings import Settings
from router.targets import CloudTarget, LocalTarget
from tests.local.fakes import FakeOpenAI, LoopThread
from tests.local.gateway import RunningGateway, http_engine
from tests.sagemaker_runtime import FakeRuntime, Reply, jsonl, lmi_chat_chunks

ENDPOINT = "llm-hybrid-ep"
REGION = "us-east-1"
COMPLEX = "Simulate 10 years of monthly investing and estimate percentiles; compare three strategies."
SIMPLE = "What are your opening hours?"
CLOUD_TEXT = "cloud answer"


class Container:
    """The SageMaker model container: an LMI chat answer (whole or streamed), or a 500 while ``down``."""

    def __init__(self) -> None:
        self.down = False

    def __call__(self, endpoint: str, body: dict[str, Any]) -> Reply:
        if self.down:
            return Reply(status=500, json_body={"error": "CUDA error: device lost"})
        if body.get("stream") is True:
            return Reply(parts=[jsonl(*lmi_chat_chunks(["cloud ", "answer"]))])
        return Reply(
            json_body={
                "id": "chatcmpl-0",
                "object": "chat.completion",
                "created": 1,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": CLOUD_TEXT}, "finish_reason": "eos_token"}
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
            }
        )


@dataclass
class Both:
    """The two entry points over the same engine and endpoint."""

    engine: FakeOpenAI
    container: Container
    runtime: FakeRuntime
    gateway: RunningGateway
    lam: Router

    def faults(self, local_down: bool, cloud_down: bool) -> None:
        self.engine.b.mode = "fail500" if local_down else "ok"
        self.container.down = cloud_down


def start_both(
    loop: LoopThread, runtime: FakeRuntime, container: Container, router_cfg: RouterConfig, failures: int = 1000
) -> Both:
    """Both entry points over one new engine; ``failures``: the gateway breaker's threshold (the Lambda's is
    ``router_cfg.breaker_failures``)."""
    engine = FakeOpenAI(loop, "onprem", served=("m", "hybrid"))
    engine.start()
    local = LocalConfig(
        profile="custom",
        engines=[http_engine("vllm", "vllm", engine.url, "m")],
        rate_limit={"per_key_per_s": 1000, "burst": 1000},
        breaker={"failure_threshold": failures, "cooldown_s": 60},
        hybrid={
            "enabled": True,
            "cloud": {"endpoint_name": ENDPOINT, "region": REGION, "base_url": runtime.url},
        },
    )
    gateway = RunningGateway(local, router=router_cfg).__enter__()
    settings = Settings.from_env(router_environment(router_cfg) | {"ROUTER_SAGEMAKER_ENDPOINT": ENDPOINT})

    def sagemaker() -> Any:
        return boto3.client("sagemaker-runtime", region_name=REGION, endpoint_url=runtime.url)

    lam = Router(
        settings,
        local=LocalTarget(engine.url, SecretCache(""), timeout_s=10),
        cloud=CloudTarget(ENDPOINT, 10, settings.default_max_tokens, client_factory=sagemaker),
    )
    return Both(engine, container, runtime, gateway, lam)


@pytest.fixture(scope="module", autouse=True)
def aws_env() -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        mp.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        mp.delenv(k, raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def container() -> Container:
    return Container()


@pytest.fixture(scope="module")
def runtime(container: Container) -> Iterator[FakeRuntime]:
    fake = FakeRuntime(container)
    yield fake
    fake.close()


def _both(loop: LoopThread, runtime: FakeRuntime, container: Container, cfg: RouterConfig) -> Iterator[Both]:
    both = start_both(loop, runtime, container, cfg)
    yield both
    both.gateway.__exit__()
    both.engine.stop()


@pytest.fixture(scope="module")
def local_only(loop_thread: LoopThread, runtime: FakeRuntime, container: Container) -> Iterator[Both]:
    yield from _both(loop_thread, runtime, container, RouterConfig(breaker_failures=100))


@pytest.fixture(scope="module")
def redacting(loop_thread: LoopThread, runtime: FakeRuntime, container: Container) -> Iterator[Both]:
    yield from _both(loop_thread, runtime, container, RouterConfig(breaker_failures=100, policy="redact_to_cloud"))


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()
