"""The invoke client against moto's sagemaker-runtime, the local server, and small real fake runtimes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from inference.invoke import EndpointClient, InvokeError, main
from tests.sagemaker_runtime import event_message, jsonl, lmi_token_lines


def _queue_results(moto_url: str, bodies: list[dict[str, Any]]) -> None:
    results = [{"Body": json.dumps(b), "ContentType": "application/json"} for b in bodies]
    r = requests.post(
        f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
        json={"account_id": "123456789012", "region": "us-east-1", "results": results},
        timeout=10,
    )
    assert r.status_code == 201


def test_generate_against_moto(moto_url: str) -> None:
    _queue_results(
        moto_url,
        [{"generated_text": "hi there", "prompt_tokens": 3, "completion_tokens": 2, "finish_reason": "length"}],
    )
    client = EndpointClient("any-endpoint", endpoint_url=moto_url, region="us-east-1")
    result = client.generate("Hello", max_new_tokens=2)
    assert result.text == "hi there"
    assert result.completion_tokens == 2
    assert result.finish_reason == "length"


def test_non_json_answer_is_a_readable_error(moto_url: str) -> None:
    client = EndpointClient("any-endpoint", endpoint_url=moto_url, region="us-east-1")
    with pytest.raises(InvokeError, match="non-JSON"):
        client.generate("Hello")  # moto's empty queue answers b"body"


def test_generate_against_the_local_server(served: str, aws_env: None) -> None:
    client = EndpointClient("local", endpoint_url=served, region="us-east-1")
    single = client.generate("Hello", max_new_tokens=3, min_new_tokens=3)
    assert isinstance(single.text, str)
    assert single.completion_tokens == 3
    batch = client.generate(["Hello", "The quick brown fox"], max_new_tokens=3, min_new_tokens=3)
    assert isinstance(batch.text, list) and len(batch.text) == 2
    assert batch.completion_tokens == [3, 3]


def test_model_error_from_the_local_server_is_readable(served: str, aws_env: None) -> None:
    client = EndpointClient("local", endpoint_url=served, region="us-east-1", max_attempts=3)
    with pytest.raises(InvokeError) as info:
        client.generate("Hello", top_p=5)
    assert info.value.status == 400
    assert str(info.value).startswith("model returned 400: parameters.top_p:")
    assert "Traceback" not in str(info.value)


def test_cli_against_the_local_server(served: str, aws_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--endpoint", "local", "--endpoint-url", served, "--max-new-tokens", "3", "--json", "Hello"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["completion_tokens"] <= 3
    assert main(["--endpoint", "local", "--endpoint-url", served, "--max-new-tokens", "0", "Hello"]) == 1
    assert "parameters.max_new_tokens" in capsys.readouterr().err


# -- a small fake sagemaker-runtime: throttles N times, then answers; streams with AWS event-stream framing ----------


class FakeRuntime:
    def __init__(self, throttle: int, chunks: list[bytes]) -> None:
        self.throttle = throttle
        self.chunks = chunks
        self.calls = 0
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                outer.calls += 1
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if outer.calls <= outer.throttle:
                    body = json.dumps({"message": "Rate exceeded"}).encode()
                    self.send_response(429)
                    self.send_header("x-amzn-ErrorType", "ThrottlingException:")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if self.path.endswith("/invocations-response-stream"):
                    stream = b"".join(event_message(c) for c in outer.chunks)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.amazon.eventstream")
                    self.send_header("X-Amzn-SageMaker-Content-Type", "application/jsonlines")
                    self.send_header("Content-Length", str(len(stream)))
                    self.end_headers()
                    self.wfile.write(stream)
                    return
                body = json.dumps({"generated_text": "ok", "prompt_tokens": 1, "completion_tokens": 1}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_runtime(aws_env: None) -> Iterator[FakeRuntime]:
    # LMI's token lines for "Hel" "lo " "世!", cut into parts mid-line and mid-character (as a real stream may be)
    body = jsonl(*lmi_token_lines(["Hel", "lo ", "世!"]))
    cut1, cut2 = body.index(b"lo "), body.index("世".encode()) + 1
    fake = FakeRuntime(throttle=2, chunks=[body[:cut1], body[cut1:cut2], body[cut2:]])
    yield fake
    fake.close()


def test_throttling_is_retried_with_backoff(fake_runtime: FakeRuntime) -> None:
    delays: list[float] = []
    client = EndpointClient(
        "ep", endpoint_url=fake_runtime.url, region="us-east-1", backoff_base_s=0.1, sleep=delays.append
    )
    assert client.generate("Hello").text == "ok"
    assert fake_runtime.calls == 3
    assert len(delays) == 2
    assert 0 <= delays[0] <= 0.1 and 0 <= delays[1] <= 0.2  # full jitter under a doubling cap


def test_throttling_gives_up_after_max_attempts(fake_runtime: FakeRuntime) -> None:
    client = EndpointClient(
        "ep", endpoint_url=fake_runtime.url, region="us-east-1", max_attempts=2, sleep=lambda s: None
    )
    with pytest.raises(InvokeError, match="gave up after 2 attempts") as info:
        client.generate("Hello")
    assert info.value.code == "ThrottlingException"


def test_streaming_decodes_event_stream_and_split_characters(fake_runtime: FakeRuntime) -> None:
    client = EndpointClient("ep", endpoint_url=fake_runtime.url, region="us-east-1", sleep=lambda s: None, engine="lmi")
    chunks = list(client.stream("Hello", max_new_tokens=4))
    assert chunks == ["Hel", "lo ", "世!"]  # one piece per token line, whole characters only
    assert fake_runtime.bodies[-1] == {"inputs": "Hello", "parameters": {"max_new_tokens": 4}, "stream": True}


def test_read_timeout_is_not_retried(aws_env: None) -> None:
    class Slow(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            stop.wait(5)

    stop = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = EndpointClient("ep", endpoint_url=f"http://127.0.0.1:{httpd.server_address[1]}", timeout_s=0.5)
        with pytest.raises(InvokeError, match="did not answer within 0.5 s"):
            client.generate("Hello")
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        EndpointClient("ep", max_attempts=0, client=object())
    with pytest.raises(ValueError, match="endpoint_name"):
        EndpointClient("", client=object())
