"""Real servers on 127.0.0.1 for the router tests: moto (Secrets Manager, sagemaker-runtime) and an OpenAI-style
gateway written with the standard library."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

GATEWAY_KEY = "sk-local-test-key"
REGION = "us-east-1"


class FakeGateway:
    """A small OpenAI-compatible chat server: answers ``echo: <last user text>``; can be told to fail."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.key = GATEWAY_KEY
        gw = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    return self._send(
                        404,
                        {
                            "error": {
                                "message": "no route",
                                "type": "invalid_request_error",
                                "param": None,
                                "code": None,
                            }
                        },
                    )
                if self.headers.get("Authorization") != f"Bearer {gw.key}":
                    return self._send(
                        401,
                        {"error": {"message": "bad key", "type": "authentication_error", "param": None, "code": None}},
                    )
                gw.requests.append(body)
                if gw.status != 200:
                    return self._send(
                        gw.status,
                        {"error": {"message": "engine down", "type": "server_error", "param": None, "code": None}},
                    )
                last = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
                answer = {
                    "id": "chatcmpl-local",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "local"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f"echo: {last}"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
                }
                self._send(200, answer)

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def aws_env(moto_url: str) -> Iterator[None]:
    """AWS settings pointing every boto3 client at the moto server, for one test module (undone after it)."""
    mp = pytest.MonkeyPatch()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_url,
    }.items():
        mp.setenv(k, v)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def secret_arn(aws_env: None, request: pytest.FixtureRequest) -> str:
    sm = boto3.client("secretsmanager", region_name=REGION)
    name = f"router/local-gateway-key/{request.module.__name__}"
    return sm.create_secret(Name=name, SecretString=json.dumps({"api_key": GATEWAY_KEY}))["ARN"]


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway()
    yield gw
    gw.close()


def queue_sagemaker(moto_url: str, *bodies: dict[str, Any]) -> None:
    """Queue answers for the next sagemaker-runtime invocations (moto's results queue)."""
    results = [{"Body": json.dumps(b), "ContentType": "application/json"} for b in bodies]
    r = requests.post(
        f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
        json={"account_id": "123456789012", "region": REGION, "results": results},
        timeout=10,
    )
    r.raise_for_status()


class CapturingEndpoint:
    """A SageMaker-runtime stand-in on 127.0.0.1 that keeps every raw request body it receives.

    boto3 ``sagemaker-runtime`` is pointed at it with ``endpoint_url``; it answers ``POST
    /endpoints/<name>/invocations`` with a ``chat.completion`` (what the SageMaker handler answers for an OpenAI chat
    body), so tests can assert on the exact bytes that left the router for the cloud.
    """

    def __init__(self, delay_s: float = 0.0) -> None:
        self.bodies: list[bytes] = []
        self.status = 200
        self.delay_s = delay_s
        ep = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                ep.bodies.append(raw)
                if ep.status != 200:
                    data = json.dumps({"message": "endpoint down"}).encode()
                    self.send_response(ep.status)
                else:
                    body = json.loads(raw)
                    answer = {
                        "id": "chatcmpl-endpoint",
                        "object": "chat.completion",
                        "created": 1,
                        "model": "endpoint",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "cloud answer"},
                                "finish_reason": "length",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 11,
                            "completion_tokens": body.get("max_tokens", 1),
                            "total_tokens": 11 + body.get("max_tokens", 1),
                        },
                    }
                    data = json.dumps(answer).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def client(self) -> Any:
        """A real boto3 ``sagemaker-runtime`` client that talks to this server."""
        return boto3.client(
            "sagemaker-runtime",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def sent_text(self) -> str:
        """Everything that reached the endpoint, decoded (JSON escapes undone)."""
        return "\n".join(json.dumps(json.loads(b), ensure_ascii=False) for b in self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[CapturingEndpoint]:
    ep = CapturingEndpoint()
    yield ep
    ep.close()
