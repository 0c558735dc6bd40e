"""One engine per device for several worker processes (the SageMaker handler's ``ENGINE_MODE=shared``).

TorchServe runs each handler worker as its own process, one request at a time. With one engine per worker the GPU
holds a model copy per worker and requests never share a batch. In shared mode the first worker of a device to take
a file lock owns the :class:`~local.embedded.sync.SyncEngine`; the others send their requests over an authenticated
Unix socket, so every worker's requests meet in the one continuous batch.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from multiprocessing.context import AuthenticationError
from pathlib import Path
from typing import Any

from local.embedded.api import GenerationRequest
from local.embedded.errors import EmbeddedEngineError, InvalidRequestError, PromptTooLongError, UnsupportedFieldError
from local.embedded.sync import Generation, SyncEngine

LOG = logging.getLogger(__name__)
_ERRORS: dict[str, type[InvalidRequestError]] = {
    cls.__name__: cls for cls in (InvalidRequestError, PromptTooLongError, UnsupportedFieldError)
}


@dataclass(frozen=True)
class EnginePaths:
    """Files that let the worker processes of one device find the engine: lock, socket, auth key."""

    lock: Path
    socket: Path
    key: Path

    @classmethod
    def for_model(cls, model_dir: str, device: str, directory: str | None = None) -> EnginePaths:
        base = Path(directory or os.environ.get("ENGINE_SOCKET_DIR") or tempfile.gettempdir())
        tag = hashlib.sha256(f"{os.path.realpath(model_dir)}|{device}".encode()).hexdigest()[:16]
        return cls(base / f"llmd-engine-{tag}.lock", base / f"llmd-engine-{tag}.sock", base / f"llmd-engine-{tag}.key")


class EngineServer:
    """Serves ``engine.generate_many`` to other processes over a Unix socket (authenticated with a random key)."""

    def __init__(self, engine: SyncEngine, paths: EnginePaths) -> None:
        self._engine = engine
        self.paths = paths
        key = secrets.token_bytes(32)
        paths.socket.unlink(missing_ok=True)  # a dead owner's socket; we hold the lock, so it is not in use
        self._listener = Listener(str(paths.socket), family="AF_UNIX", authkey=key)
        os.chmod(paths.socket, 0o600)
        tmp = paths.key.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        os.replace(tmp, paths.key)  # clients read the key only once it is complete
        self._closed = False
        threading.Thread(target=self._accept, name="engine-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, AuthenticationError):
                if self._closed:
                    return
                continue
            threading.Thread(target=self._serve, args=(conn,), name="engine-conn", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    requests = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    conn.send(("ok", self._engine.generate_many(requests)))
                except InvalidRequestError as err:
                    conn.send(("invalid", (type(err).__name__, err.param, str(err).removeprefix(f"{err.param}: "))))
                except Exception as err:
                    conn.send(("error", f"{type(err).__name__}: {err}"))

    def close(self) -> None:
        """Stop accepting and remove the socket and key files."""
        self._closed = True
        self._listener.close()
        self.paths.key.unlink(missing_ok=True)


class RemoteEngine:
    """``generate_many`` through the owner's socket; one connection per thread, reconnecting after a failure."""

    def __init__(self, paths: EnginePaths, connect_timeout_s: float) -> None:
        self.paths = paths
        self.connect_timeout_s = connect_timeout_s
        self._local = threading.local()

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the engine accepts a connection (the owner may still be loading the model).

        Raises:
            EmbeddedEngineError: no answer within ``timeout_s``.
        """
        self._local.conn = self._connect(timeout_s)

    def _connect(self, timeout_s: float | None = None) -> Connection:
        timeout_s = self.connect_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return Client(str(self.paths.socket), family="AF_UNIX", authkey=self.paths.key.read_bytes())
            except (OSError, EOFError, AuthenticationError) as err:
                if time.monotonic() >= deadline:
                    raise EmbeddedEngineError(
                        f"the shared engine at {self.paths.socket} did not answer within {timeout_s:g} s ({err})"
                    ) from None
                time.sleep(0.2)

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate in the owner process.

        Raises:
            InvalidRequestError: (or a subclass) the engine refused a request.
            EmbeddedEngineError: the owner is gone (the caller answers 503; TorchServe restarts it).
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        try:
            conn.send(list(requests))
            status, payload = conn.recv()
        except (EOFError, OSError) as err:
            self._local.conn = None
            raise EmbeddedEngineError(f"the shared engine process went away ({type(err).__name__}); retry") from None
        if status == "invalid":
            name, param, message = payload
            raise _ERRORS.get(name, InvalidRequestError)(param, message)
        if status != "ok":
            raise EmbeddedEngineError(f"shared engine failed: {payload}")
        return list(payload)


@dataclass
class SharedEngine:
    """The engine a worker uses in shared mode: the local one (owner) or a socket client, plus what to release."""

    engine: Any
    server: EngineServer | None = None
    lock_fd: int | None = None


def open_shared(
    model_dir: str, device: str, start: Any, connect_timeout_s: float, start_timeout_s: float
) -> SharedEngine:
    """Own the device's engine (``start()`` builds it) if no other worker does, else connect to the owner's.

    The lock stays held (its fd open) for the owner's life; the kernel frees it if the process dies, and the worker
    TorchServe starts in its place takes it over.
    """
    paths = EnginePaths.for_model(model_dir, device)
    paths.lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        LOG.info("using the shared engine at %s", paths.socket)
        remote = RemoteEngine(paths, connect_timeout_s)
        remote.wait_ready(start_timeout_s)  # ready (model_fn returns, /ping passes) only once the engine answers
        return SharedEngine(remote)
    engine = start()
    LOG.info("serving the shared engine at %s", paths.socket)
    return SharedEngine(engine, EngineServer(engine, paths), fd)
