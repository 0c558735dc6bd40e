"""A small sagemaker-runtime on 127.0.0.1 for tests: InvokeEndpoint and InvokeEndpointWithResponseStream.

It speaks the wire format boto3 parses, so the real botocore client is exercised end to end (the framing and error
builders are ``inference/runtime_api.py``, shared with the local container servers):
- ``POST /endpoints/<name>/invocations`` answers the container's JSON, or a container error as ``ModelError`` (HTTP
  424 with OriginalStatusCode/OriginalMessage) as the real service does;
- ``POST /endpoints/<name>/invocations-response-stream`` answers ``application/vnd.amazon.eventstream``: one
  AWS event-stream message per payload part (prelude with total and header length + CRC32, string headers
  ``:event-type`` / ``:content-type`` / ``:message-type``, payload, message CRC32), sent with chunked transfer
  encoding and flushed part by part, so a client sees each part when it is sent.

What the fake container answers is given by a ``respond(endpoint, body) -> Reply`` function; the replies used in the
tests follow the LMI container's documented shapes (djl-serving ``lmi_input_output_schema.md`` and
``chat_input_output_schema.md``) and our handler's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from inference.runtime_api import ROUTE, event_message, model_error, stream_error_message

__all__ = ["FakeRuntime", "Gate", "Reply", "StreamError", "event_message", "jsonl"]


@dataclass
class Gate:
    """A pause inside a stream: the server waits for ``event`` (set by the test) before sending the next part."""

    event: threading.Event
    timeout_s: float = 10.0


@dataclass
class StreamError:
    """A ModelStreamError event (the container failed after the stream began)."""

    message: str
    code: str = "ModelStreamError"


@dataclass
class Reply:
    """The container's answer: ``json_body`` (status ``status``), or ``parts`` to stream."""

    status: int = 200
    json_body: Any = None
    parts: list[bytes | Gate | StreamError] = field(default_factory=list)
    streamed: bool = False


class FakeRuntime:
    """Run the fake service; ``calls`` records (endpoint, operation, request JSON) for assertions."""

    def __init__(self, respond: Callable[[str, dict[str, Any]], Reply]) -> None:
        self.respond = respond
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.abandoned = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_POST(self) -> None:
                m = ROUTE.match(self.path.split("?", 1)[0])
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if m is None:
                    self._send(404, b'{"message": "not found"}', {"Content-Type": "application/json"})
                    return
                endpoint, op = m.group(1), m.group(2)
                body = json.loads(raw or b"{}")
                outer.calls.append((endpoint, op, body))
                reply = outer.respond(endpoint, body)
                if reply.status >= 400:
                    self._send(*model_error(reply.status, json.dumps(reply.json_body), endpoint))
                    return
                if op == "invocations":
                    self._send(200, json.dumps(reply.json_body).encode(), {"Content-Type": "application/json"})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.amazon.eventstream")
                self.send_header("X-Amzn-SageMaker-Content-Type", "application/jsonlines")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                parts = reply.parts or [json.dumps(reply.json_body).encode()]
                try:
                    for part in parts:
                        if isinstance(part, Gate):
                            part.event.wait(part.timeout_s)
                        elif isinstance(part, StreamError):
                            self._chunk(stream_error_message(part.message, part.code))
                        else:
                            self._chunk(event_message(part))
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    outer.abandoned.set()  # the client closed the stream before its end
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def jsonl(*objects: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objects)


def lmi_token_lines(pieces: list[str], finish: str = "length", prompt_tokens: int = 3) -> list[dict[str, Any]]:
    """LMI's standard-schema stream for ``pieces``: one ``{"token": ...}`` line each, details on the last."""
    out: list[dict[str, Any]] = []
    for i, text in enumerate(pieces):
        last = i == len(pieces) - 1
        out.append(
            {
                "token": {"id": [100 + i], "text": text, "log_prob": -0.5},
                "generated_text": "".join(pieces) if last else None,
                "details": {"finish_reason": finish, "generated_tokens": len(pieces), "prompt_tokens": prompt_tokens}
                if last
                else None,
            }
        )
    return out


def lmi_chat_chunks(pieces: list[str], finish: str = "eos_token") -> list[dict[str, Any]]:
    """LMI's chat-schema stream for ``pieces``: ``chat.completion.chunk`` objects, finish_reason on the last."""
    out: list[dict[str, Any]] = []
    for i, text in enumerate(pieces):
        delta: dict[str, Any] = {"content": text}
        if i == 0:
            delta["role"] = "assistant"
        out.append(
            {
                "id": "chatcmpl-0",
                "object": "chat.completion.chunk",
                "created": 1712792433,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish if i == len(pieces) - 1 else None,
                    }
                ],
            }
        )
    return out
