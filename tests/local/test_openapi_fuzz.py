"""Property-based fuzzing of every gateway route from its own OpenAPI document (issue 9 item 8): schemathesis
generates valid and invalid requests from ``/openapi.json`` and sends them to the real gateway on 127.0.0.1, in
front of a real (fake-vLLM) upstream. No request may get a 5xx. Examples are bounded to keep ``make test`` fast."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from local.openapi import openapi_document
from tests.local.fakes import LoopThread
from tests.local.faults import FaultUpstream
from tests.local.gateway import KEY, RunningGateway, custom, http_engine

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def gateway(loop_thread: LoopThread) -> Iterator[RunningGateway]:
    up = FaultUpstream(loop_thread).start()
    cfg = custom(http_engine("vllm", "vllm", up.url, upstream_models={"m": "up-model"}), default_max_tokens=8)
    with RunningGateway(cfg) as gw:
        yield gw
    up.stop()


# The document the gateway serves (checked equal below), loaded at import so pytest can parametrize from it.
schema = schemathesis.openapi.from_dict(openapi_document(metrics_secured=False, max_n=16))


def test_the_document_lists_every_route(gateway: RunningGateway) -> None:
    doc = gateway.get("/openapi.json", key=None).json()
    assert doc == openapi_document(metrics_secured=False, max_n=16)
    assert set(doc["paths"]) == {
        "/v1/chat/completions",
        "/v1/completions",
        "/generate",
        "/v1/models",
        "/health",
        "/ready",
        "/metrics",
    }
    chat = doc["components"]["schemas"]["ChatCompletionRequest"]
    assert chat["properties"]["temperature"]["anyOf"][0]["maximum"] == 2 and chat["properties"]["n"]["maximum"] == 16


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_5xx(case: Any, gateway: RunningGateway) -> None:
    case.call_and_validate(
        base_url=gateway.url, headers={"Authorization": f"Bearer {KEY}"}, checks=[not_a_server_error], timeout=30
    )
