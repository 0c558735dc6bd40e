"""Issue 9 item 1: a JSON schema in a request never makes the gateway fetch anything (no SSRF, no local file read),
and schemas too deep, too big or invalid are a 400 naming the field, never a 500 with a traceback in the log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.local.fakes import FakeOpenAI, LoopThread
from tests.local.gateway import RunningGateway, custom, http_engine

MSG = [{"role": "user", "content": "hi"}]
SECRET = "top-secret-file-content-5e1f"


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - shared on purpose: the server thread appends, the test reads

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'{"type": "string", "description": "' + SECRET.encode() + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def ref_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server a ``$ref`` points at; it records every fetch."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.hits
    server.shutdown()


@pytest.fixture(scope="module")
def gw(loop_thread: LoopThread) -> Iterator[RunningGateway]:
    fake = FakeOpenAI(loop_thread, "vllm").start()
    with RunningGateway(custom(http_engine("vllm", "vllm", fake.url))) as running:
        yield running
    fake.stop()


def ask(gw: RunningGateway, schema: Any, stream: bool = False) -> requests.Response:
    rf = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    return gw.post("/v1/chat/completions", {"model": "m", "messages": MSG, "response_format": rf, "stream": stream})


def assert_schema_400(r: requests.Response) -> str:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"].startswith("response_format.json_schema.schema"), err
    assert SECRET not in r.text
    return str(err["message"])


@pytest.mark.parametrize("stream", [False, True])
def test_http_ref_is_never_fetched(gw: RunningGateway, ref_server: tuple[str, list[str]], stream: bool) -> None:
    url, hits = ref_server
    before = len(hits)
    schema = {"type": "object", "properties": {"name": {"$ref": f"{url}/name.json"}}}
    msg = assert_schema_400(ask(gw, schema, stream))
    assert "$ref" in msg
    time.sleep(0.2)
    assert len(hits) == before, f"the gateway fetched {hits[before:]}"


def test_file_ref_is_never_read(gw: RunningGateway, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "string", "description": "' + SECRET + '"}')
    for ref in (secret.as_uri(), str(secret), "secret.json#/x"):
        assert_schema_400(ask(gw, {"type": "object", "properties": {"name": {"$ref": ref}}}))
    # an $id that moves the base URI elsewhere cannot smuggle a relative $ref out either
    assert_schema_400(ask(gw, {"$id": tmp_path.as_uri() + "/", "properties": {"a": {"$ref": "secret.json"}}}))


def test_local_refs_still_work(gw: RunningGateway) -> None:
    schema = {
        "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
        "$ref": "#/$defs/person",
    }
    r = ask(gw, schema)
    assert r.status_code == 200, r.text


def test_deep_and_huge_schemas_are_400(gw: RunningGateway, caplog: pytest.LogCaptureFixture) -> None:
    deep_props: dict[str, Any] = {"type": "string"}
    for _ in range(100):
        deep_props = {"type": "object", "properties": {"a": deep_props}}
    deep_allof: dict[str, Any] = {"type": "object"}
    for _ in range(300):
        deep_allof = {"allOf": [deep_allof]}
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(20_000)}}
    with caplog.at_level(logging.INFO):
        for schema in (deep_props, deep_allof):
            assert "deep" in assert_schema_400(ask(gw, schema))
        assert "nodes" in assert_schema_400(ask(gw, wide))
        assert gw.get("/health").status_code == 200
    assert "Traceback" not in caplog.text and "unexpected error" not in caplog.text


def test_invalid_schema_is_400_naming_the_field(gw: RunningGateway) -> None:
    msg = assert_schema_400(ask(gw, {"type": "object", "properties": {"a": {"type": "nonsense"}}}))
    assert "nonsense" in msg
    assert_schema_400(ask(gw, ["not", "an", "object"]))
