"""Local container-contract server: smoke-test a ``model.tar.gz`` the way the SageMaker container serves it.

    python -m inference.serve --package model_packages/dist/<name>/model.tar.gz [--port 8080]
    python -m inference.serve --model-dir DIR [--port 8080]

- ``GET /ping`` -> 200 once the model is loaded; ``POST /invocations`` runs the package's own ``code/inference.py``
  through ``input_fn -> predict_fn -> output_fn`` exactly as sagemaker_inference's Transformer does: the body is
  decoded to ``str`` only for Content-Type ``application/json``/``text/csv``, ``*/*`` or no Accept means
  SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (default application/json), an exception with ``status_code`` answers with that
  status and ``message + "\\n" + traceback`` (the real toolkit's body), any other exception answers 500.
- ``POST /endpoints/<name>/invocations`` speaks the sagemaker-runtime API, so boto3 (and ``inference.invoke``) can use
  this server through ``endpoint_url``: container errors come back as ``ModelError`` (HTTP 424) with
  OriginalStatusCode/OriginalMessage, as from a real endpoint.
- Requests run on threads (like a GPU's batch of concurrent HTTP requests), so they meet in the generation core's
  continuous batch; ``--serial`` runs one request at a time instead, like a single TorchServe worker.

The tarball is unpacked with a member check (no absolute paths, no '..', no links or devices) before anything is read.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import logging
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from inference import runtime_api

LOG = logging.getLogger("llm_deploy.serve")
UTF8_TYPES = ("application/json", "text/csv")  # sagemaker_inference.content_types.UTF8_TYPES, matched exactly
MAX_BODY_BYTES = 6 * 1024 * 1024  # the SageMaker real-time invocation payload limit
LISTEN_BACKLOG = 1024  # socketserver's default of 5 drops/resets bursts of concurrent clients
FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn")


class UnsafeArchiveError(Exception):
    """A tarball member would land outside the target directory or is not a plain file/directory."""


def safe_extract(tarball: Path, dest: Path) -> Path:
    """Unpack ``tarball`` into ``dest`` after checking every member.

    Raises:
        UnsafeArchiveError: an absolute path, a '..' component, a link, a device or another special member (named).
    """
    dest = dest.resolve()
    with tarfile.open(tarball, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            p = PurePosixPath(m.name)
            if p.is_absolute() or ".." in p.parts or m.name.startswith(("/", "\\")) or ":" in p.parts[0]:
                raise UnsafeArchiveError(f"{tarball}: member {m.name!r} points outside the package")
            if not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{tarball}: member {m.name!r} is a link or special file; only files allowed")
            if not (dest / m.name).resolve().is_relative_to(dest):
                raise UnsafeArchiveError(f"{tarball}: member {m.name!r} points outside the package")
        # The "data" filter repeats these checks in the standard library and drops setuid bits and owners.
        tar.extractall(dest, members=members, filter="data")
    return dest


def load_handler_module(model_dir: Path) -> ModuleType:
    """Import ``<model_dir>/code/inference.py`` (the packaged handler) or fall back to this repo's handler.

    Raises:
        AttributeError: the module lacks one of model_fn/input_fn/predict_fn/output_fn.
    """
    code = model_dir / "code" / "inference.py"
    module: ModuleType
    if code.is_file():
        # The container puts code/ on sys.path and imports "inference"; a distinct name avoids shadowing this package.
        sys.path.insert(0, str(code.parent))
        spec = importlib.util.spec_from_file_location("packaged_inference", code)
        if spec is None or spec.loader is None:
            raise ImportError(f"{code}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules["packaged_inference"] = module
        spec.loader.exec_module(module)
    else:
        from inference import inference as module
    missing = [f for f in FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise AttributeError(f"{code}: missing handler functions: {', '.join(missing)}")
    return module


@dataclass
class _Context:
    """The bits of the model server's context that handlers read."""

    system_properties: dict[str, Any] = field(default_factory=dict)


def call_handler(func: Any, context: _Context, *args: Any) -> Any:
    """Call a handler function like the toolkit: pass the context only when it takes one more parameter."""
    n = len(inspect.signature(func).parameters)
    if n == len(args):
        return func(*args)
    if n == len(args) + 1:
        return func(*args, context)
    raise TypeError(f"{func.__name__} takes {n} arguments but {len(args)} were given")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str


class ContainerApp:
    """The loaded handler plus the toolkit's request workflow; independent of HTTP so the benchmark can reuse it."""

    def __init__(
        self, model_dir: Path, serial: bool = False, module: ModuleType | None = None, model: Any = None
    ) -> None:
        """Load the handler module and call its model_fn (unless ``model`` is given, already loaded)."""
        self.model_dir = model_dir
        self.module = module or load_handler_module(model_dir)
        self.context = _Context({"model_dir": str(model_dir), "gpu_id": 0})
        self.model = model if model is not None else call_handler(self.module.model_fn, self.context, str(model_dir))
        self.default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
        self._serial_lock = threading.Lock() if serial else None

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Response:
        """Run one request through input_fn -> predict_fn -> output_fn; never raises."""
        if self._serial_lock is None:
            return self._invoke(body, content_type, accept)
        with self._serial_lock:
            return self._invoke(body, content_type, accept)

    def _invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Response:
        if not accept or accept == "*/*":
            accept = self.default_accept
        try:
            data: str | bytes = body
            if content_type in UTF8_TYPES:
                data = body.decode("utf-8")
            parsed = call_handler(self.module.input_fn, self.context, data, content_type)
            prediction = call_handler(self.module.predict_fn, self.context, parsed, self.model)
            result = call_handler(self.module.output_fn, self.context, prediction, accept)
        except Exception as err:
            trace = traceback.format_exc()
            status = getattr(err, "status_code", None)
            message = getattr(err, "message", None)
            if not isinstance(status, int) or not isinstance(message, str):
                status, message = 500, str(err)
                LOG.error("handler failed: %s", trace)
            return Response(status, f"{message}\n{trace}".encode(), "text/plain")
        response_type = accept
        if isinstance(result, tuple):
            result, response_type = result[0], result[1]
        payload = result if isinstance(result, bytes | bytearray) else str(result).encode("utf-8")
        return Response(200, bytes(payload), response_type)


class _Handler(BaseHTTPRequestHandler):
    server_version = "llm-deploy-container/1"
    protocol_version = "HTTP/1.1"  # keep-alive, as the benchmark's clients and SageMaker's front end use
    app: ContainerApp

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, code: str) -> None:
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
        self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(200, b"{}\n", {"Content-Type": "application/json"})
        else:
            self._error(404, f"{self.path}: not found; use GET /ping or POST /invocations", "not_found")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        route = runtime_api.ROUTE.match(path)
        runtime = route if route is not None and route.group(2) == "invocations" else None
        if path != "/invocations" and runtime is None:
            self._error(404, f"{path}: not found; use POST /invocations", "not_found")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self._error(400, "Content-Length: not an integer", "bad_request")
            return
        if length > MAX_BODY_BYTES:
            self._error(413, f"body: {length} bytes; at most {MAX_BODY_BYTES} allowed", "payload_too_large")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        resp = self.app.invoke(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
        if runtime is not None and resp.status != 200:
            original = resp.body.decode("utf-8", "replace")
            status, out, headers = runtime_api.model_error(resp.status, original, runtime.group(1))
            self._send(status, out, headers)
            return
        headers = {"Content-Type": resp.content_type}
        if runtime is not None:
            headers[runtime_api.INVOKED_VARIANT_HEADER] = runtime_api.VARIANT
        self._send(resp.status, resp.body, headers)


def make_server(app: ContainerApp, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """Bind an HTTP server for ``app`` (port 0 picks a free port; read it from ``server.server_address``)."""
    handler = type("BoundHandler", (_Handler,), {"app": app})
    server_cls = type("ContainerServer", (ThreadingHTTPServer,), {"request_queue_size": LISTEN_BACKLOG})
    server = server_cls((host, port), handler)
    server.daemon_threads = True
    return server


def prepare_model_dir(package: Path | None, model_dir: Path | None, workdir: Path | None) -> Path:
    """Return the directory to serve: ``model_dir`` as is, or ``package`` unpacked safely into ``workdir``."""
    if model_dir is not None:
        return model_dir
    assert package is not None
    if not package.is_file():
        raise FileNotFoundError(f"--package: {package} does not exist; build it with make package")
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="llmd-serve-", dir=workdir))
    return safe_extract(package, target)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Serve a SageMaker model package locally (GET /ping, POST /invocations).")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--package", type=Path, help="model.tar.gz to unpack and serve")
    src.add_argument("--model-dir", type=Path, help="an unpacked model directory")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; the container uses 0.0.0.0)")
    ap.add_argument("--port", type=int, default=8080, help="default 8080 (SageMaker's); 0 picks a free port")
    ap.add_argument("--workdir", type=Path, default=None, help="where to unpack --package (default: a temp dir)")
    ap.add_argument("--serial", action="store_true", help="one request at a time, like a single TorchServe worker")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        model_dir = prepare_model_dir(args.package, args.model_dir, args.workdir)
        app = ContainerApp(model_dir, serial=args.serial)
    except (UnsafeArchiveError, FileNotFoundError, tarfile.TarError, AttributeError, ImportError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    server = make_server(app, args.host, args.port)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"serving {model_dir} (handler {app.module.__file__}) on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if args.package is not None:  # the unpacked copy is ours: leave no weights behind in /tmp
            shutil.rmtree(model_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
