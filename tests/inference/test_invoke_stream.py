"""`python -m inference.invoke --stream` against a sagemaker-runtime on 127.0.0.1 that streams with AWS event-stream
framing: tokens arrive as sent (LMI), a buffering container's answer arrives once (handler), errors are readable."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from inference.invoke import EndpointClient, InvokeError, LineSplitter, main, stream_piece
from tests.sagemaker_runtime import FakeRuntime, Gate, Reply, StreamError, jsonl, lmi_chat_chunks, lmi_token_lines


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def runtime(aws_env: None, gate: threading.Event) -> Iterator[FakeRuntime]:
    def respond(endpoint: str, body: dict[str, Any]) -> Reply:
        if endpoint == "handler-ep":  # the toolkit buffers: one part holding output_fn's JSON
            return Reply(json_body={"generated_text": " world", "prompt_tokens": 1, "completion_tokens": 2})
        if endpoint == "broken-ep":
            return Reply(parts=[jsonl(*lmi_token_lines(["Hi"])), StreamError("CUDA out of memory")])
        if endpoint == "bad-ep":
            return Reply(status=400, json_body={"error": {"message": "max_new_tokens: must be >= 1"}})
        if "messages" in body:
            lines = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in lmi_chat_chunks(["Bon", "jour"])]
            return Reply(parts=[*lines, b"data: [DONE]\n\n"])
        first, *rest = lmi_token_lines(["Once", " upon", " a", " time"])
        # the rest waits until the test has seen the first token: proves the client yields before the end
        return Reply(parts=[jsonl(first), Gate(gate), jsonl(*rest)])

    fake = FakeRuntime(respond)
    yield fake
    fake.close()


def client(runtime: FakeRuntime, endpoint: str, engine: str = "lmi") -> EndpointClient:
    return EndpointClient(endpoint, endpoint_url=runtime.url, region="us-east-1", engine=engine, max_attempts=1)


def test_lmi_tokens_arrive_one_by_one_before_the_stream_ends(runtime: FakeRuntime, gate: threading.Event) -> None:
    pieces = client(runtime, "lmi-ep").stream("Tell me a story", max_new_tokens=4)
    assert next(pieces) == "Once"  # the server is still holding the other tokens back
    assert runtime.calls[-1] == (
        "lmi-ep",
        "invocations-response-stream",
        {"inputs": "Tell me a story", "parameters": {"max_new_tokens": 4}, "stream": True},
    )
    gate.set()
    assert list(pieces) == [" upon", " a", " time"]


def test_lmi_chat_chunks_with_sse_prefix_are_read(runtime: FakeRuntime) -> None:
    events = list(client(runtime, "lmi-ep").stream_events({"messages": [{"role": "user", "content": "Salut"}]}))
    pieces = [stream_piece(e) for e in events]
    assert "".join(p.text for p in pieces) == "Bonjour"
    assert pieces[-1].finish_reason == "stop"  # LMI's eos_token, in OpenAI's words


def test_handler_engine_streams_its_buffered_answer_once(runtime: FakeRuntime) -> None:
    assert list(client(runtime, "handler-ep", engine="handler").stream("Hello")) == [" world"]
    assert "stream" not in runtime.calls[-1][2]  # the handler is not asked for something it cannot do


def test_model_stream_error_after_the_first_token_is_raised(runtime: FakeRuntime) -> None:
    pieces = client(runtime, "broken-ep").stream("Hi")
    assert next(pieces) == "Hi"
    with pytest.raises(InvokeError, match="model stream error ModelStreamError: CUDA out of memory"):
        next(pieces)


def test_container_4xx_before_the_stream_is_readable(runtime: FakeRuntime) -> None:
    with pytest.raises(InvokeError) as info:
        list(client(runtime, "bad-ep").stream("Hi"))
    assert info.value.status == 400
    assert "max_new_tokens: must be >= 1" in str(info.value)


def test_cli_stream_prints_tokens(
    runtime: FakeRuntime, gate: threading.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    gate.set()
    args = ["--endpoint", "lmi-ep", "--engine", "lmi", "--endpoint-url", runtime.url, "--stream", "Tell", "me"]
    assert main(args) == 0
    assert capsys.readouterr().out == "Once upon a time\n"
    assert main(["--endpoint", "bad-ep", "--engine", "lmi", "--endpoint-url", runtime.url, "--stream", "x"]) == 1
    assert "max_new_tokens: must be >= 1" in capsys.readouterr().err


def test_cli_reads_endpoint_and_engine_from_the_config(
    runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    # prod deploys llm-prod-gpt2-large on the handler engine: no "stream" flag, one buffered answer
    runtime.respond = lambda endpoint, body: Reply(json_body={"generated_text": f"{endpoint}!"})
    assert main(["--env", "prod", "--endpoint-url", runtime.url, "--stream", "Hi"]) == 0
    assert capsys.readouterr().out == "llm-prod-gpt2-large!\n"
    assert "stream" not in runtime.calls[-1][2]


def test_line_splitter_holds_partial_lines_and_characters() -> None:
    lines = LineSplitter()
    data = '{"a": "世"}\n{"b": 1}'.encode()
    cut = data.index("世".encode()) + 1
    assert lines.feed(data[:cut]) == []
    assert lines.feed(data[cut:]) == ['{"a": "世"}']
    assert lines.close() == ['{"b": 1}']


def test_unknown_stream_shapes_are_errors_not_silence() -> None:
    with pytest.raises(InvokeError, match="no known shape"):
        stream_piece({"outputs": "?"})
    with pytest.raises(InvokeError, match="list of generations"):
        stream_piece({"generated_text": ["a", "b"]})
