"""The gateway's `sagemaker` engine through the official openai SDK: the real gateway on uvicorn, boto3's
sagemaker-runtime client, and a 127.0.0.1 sagemaker-runtime speaking AWS event-stream framing whose container
answers in the LMI container's documented shapes (tests/sagemaker_runtime.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from config.local_section import EngineSpec
from tests.local.gateway import KEY, RunningGateway, custom
from tests.sagemaker_runtime import FakeRuntime, Gate, Reply, StreamError, jsonl, lmi_chat_chunks, lmi_token_lines


@pytest.fixture(scope="module", autouse=True)
def aws_env() -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        mp.setenv(k, v)
    mp.delenv("AWS_PROFILE", raising=False)
    yield
    mp.undo()


class Container:
    """What the fake endpoints answer; ``gate`` holds a stream after its first token until the test opens it."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def __call__(self, endpoint: str, body: dict[str, Any]) -> Reply:
        streaming = body.get("stream") is True
        if endpoint == "handler-ep":  # our handler: buffered answers, never asked to stream
            assert "stream" not in body
            return Reply(
                json_body={
                    "generated_text": "buffered answer",
                    "prompt_tokens": 4,
                    "completion_tokens": 2,
                    "finish_reason": "length",
                }
            )
        if body.get("max_tokens") == 7 or body.get("parameters", {}).get("max_new_tokens") == 7:
            return Reply(status=400, json_body={"error": {"message": "max_tokens: 7 is unlucky", "type": "x"}})
        if endpoint == "long-ep":  # a long answer: first token, then (after the gate) one token per 0.3 s
            chunks = lmi_chat_chunks(["Par", *["is"] * 20])
            pause = [Gate(threading.Event(), timeout_s=0.3)]
            return Reply(
                parts=[jsonl(chunks[0]), Gate(self.gate), *[p for c in chunks[1:] for p in (jsonl(c), *pause)]]
            )
        if endpoint == "broken-ep":
            return Reply(parts=[jsonl(lmi_chat_chunks(["Par", "is"])[0]), StreamError("CUDA error: device lost")])
        if "messages" in body:
            if not streaming:
                return Reply(
                    json_body={
                        "id": "chatcmpl-0",
                        "object": "chat.completion",
                        "created": 1,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "Paris."},
                                "logprobs": None,
                                "finish_reason": "eos_token",
                            }
                        ],
                        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
                    }
                )
            first, *rest = lmi_chat_chunks(["Par", "is", "."])
            return Reply(parts=[jsonl(first), Gate(self.gate), jsonl(*rest)])
        if not streaming:
            return Reply(
                json_body={
                    "generated_text": " upon a time",
                    "details": {"finish_reason": "length", "generated_tokens": 3},
                }
            )
        return Reply(parts=[jsonl(*lmi_token_lines([" upon", " a", " time"], finish="length"))])


@pytest.fixture(scope="module")
def container() -> Container:
    return Container()


@pytest.fixture(scope="module")
def runtime(container: Container) -> Iterator[FakeRuntime]:
    fake = FakeRuntime(container)
    yield fake
    fake.close()


def sagemaker(name: str, endpoint: str, url: str, engine: str = "lmi") -> EngineSpec:
    return EngineSpec(
        name=name,
        kind="sagemaker",
        endpoint_name=endpoint,
        region="us-east-1",
        base_url=url,
        models=[name],
        endpoint_engine=engine,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def gateway(runtime: FakeRuntime) -> Iterator[RunningGateway]:
    local = custom(
        sagemaker("llama", "llama-ep", runtime.url),
        sagemaker("gpt2", "handler-ep", runtime.url, engine="handler"),
        sagemaker("broken", "broken-ep", runtime.url),
        sagemaker("long", "long-ep", runtime.url),
    )
    with RunningGateway(local) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def test_chat_is_sent_as_messages_and_answered_in_openai_shape(client: openai.OpenAI, runtime: FakeRuntime) -> None:
    r = client.chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "Capital of France?"}], max_tokens=16, temperature=0.2
    )
    assert r.choices[0].message.content == "Paris."
    assert r.choices[0].finish_reason == "stop"  # LMI's eos_token, mapped
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (12, 3)  # type: ignore[union-attr]
    assert r.model == "llama"
    endpoint, op, body = runtime.calls[-1]
    assert (endpoint, op) == ("llama-ep", "invocations")
    assert body == {
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "max_tokens": 16,
        "temperature": 0.2,
    }


def test_chat_streams_tokens_as_the_endpoint_sends_them(
    client: openai.OpenAI, container: Container, runtime: FakeRuntime
) -> None:
    container.gate.clear()
    stream = client.chat.completions.create(
        model="llama",
        messages=[{"role": "user", "content": "Capital?"}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = iter(stream)
    first = next(chunks)
    assert first.choices[0].delta.content == "Par"  # arrived while the endpoint still holds the rest
    assert first.choices[0].delta.role == "assistant"
    container.gate.set()
    rest = list(chunks)
    assert "".join(c.choices[0].delta.content or "" for c in rest if c.choices) == "is."
    assert [c.choices[0].finish_reason for c in rest if c.choices][-1] == "stop"
    assert rest[-1].usage is not None and rest[-1].usage.completion_tokens == 3
    assert runtime.calls[-1][1] == "invocations-response-stream"
    assert runtime.calls[-1][2]["stream"] is True


def test_completions_use_the_standard_schema(client: openai.OpenAI, runtime: FakeRuntime) -> None:
    r = client.completions.create(model="llama", prompt="Once", max_tokens=3, seed=1)
    assert r.choices[0].text == " upon a time"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 3
    assert runtime.calls[-1][2] == {"inputs": "Once", "parameters": {"max_new_tokens": 3, "seed": 1, "details": True}}
    pieces = [
        c.choices[0].text for c in client.completions.create(model="llama", prompt="Once", max_tokens=3, stream=True)
    ]
    assert "".join(pieces) == " upon a time"
    assert len([p for p in pieces if p]) == 3  # one chunk per token line


def test_handler_endpoint_streams_its_buffered_answer_as_one_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="gpt2", messages=[{"role": "user", "content": "Hi"}], stream=True)
    )
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == ["buffered answer"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    whole = client.chat.completions.create(model="gpt2", messages=[{"role": "user", "content": "Hi"}])
    assert whole.choices[0].message.content == "buffered answer"
    assert whole.usage is not None and (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (4, 2)


def test_container_4xx_reaches_the_client_as_an_openai_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "x"}], max_tokens=7)
    assert info.value.status_code == 400
    assert "max_tokens: 7 is unlucky" in str(info.value)
    body = info.value.body
    assert isinstance(body, dict) and body.get("type") == "invalid_request_error"


def test_failure_mid_stream_ends_with_an_error_event(gateway: RunningGateway) -> None:
    r = gateway.post(
        "/v1/chat/completions",
        {"model": "broken", "messages": [{"role": "user", "content": "x"}], "stream": True},
        stream=True,
    )
    assert r.status_code == 200
    events = [line[6:] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "Par"
    error = json.loads(events[-1])["error"]
    assert "CUDA error: device lost" in error["message"]


def test_unreachable_endpoint_is_a_503_not_a_hang(loop_thread: Any) -> None:
    local = custom(sagemaker("gone", "gone-ep", "http://127.0.0.1:9"))
    with RunningGateway(local) as gw:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=20)
        with pytest.raises(openai.APIStatusError) as info:
            c.chat.completions.create(model="gone", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 503


def test_spec_needs_an_endpoint_name() -> None:
    with pytest.raises(ValueError, match="endpoint_name: required for a sagemaker engine"):
        EngineSpec(name="x", kind="sagemaker", models=["x"])
    with pytest.raises(ValueError, match="endpoint_name: only for a sagemaker engine"):
        EngineSpec(name="x", kind="vllm", base_url="http://127.0.0.1:8000", models=["x"], endpoint_name="ep")


def test_client_leaving_mid_stream_closes_the_endpoint_stream(
    gateway: RunningGateway, container: Container, runtime: FakeRuntime
) -> None:
    container.gate.clear()
    r = gateway.post(
        "/v1/chat/completions",
        {"model": "long", "messages": [{"role": "user", "content": "x"}], "stream": True},
        stream=True,
    )
    first = next(line for line in r.iter_lines(decode_unicode=True) if line.startswith("data: "))
    assert json.loads(first[6:])["choices"][0]["delta"]["content"] == "Par"
    runtime.abandoned.clear()
    r.close()  # the client goes away while the endpoint still holds the rest
    time.sleep(0.5)  # let the gateway notice the disconnect and close its side
    container.gate.set()
    # the gateway stops reading and closes its sagemaker-runtime stream after the token in flight, so the endpoint's
    # next writes fail (a gateway that drained the stream in the background would take all 20 tokens, 6 s)
    assert runtime.abandoned.wait(4)
    # and it still answers the next request (no stuck worker thread or leaked connection)
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=20)
    assert c.chat.completions.create(model="llama", messages=[{"role": "user", "content": "y"}]).choices
