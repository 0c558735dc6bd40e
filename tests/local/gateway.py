"""Run the real gateway app on uvicorn, on a random 127.0.0.1 port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import requests
import uvicorn

from config.local_section import EngineSpec, LocalConfig
from config.router_section import RouterConfig
from local.app import create_app
from local.engines.base import Engine
from local.settings import GatewaySettings

KEY = "sk-test-0123456789"


class RunningGateway:
    def __init__(
        self,
        local: LocalConfig,
        engines: list[Engine] | None = None,
        api_key: str | None = KEY,
        router: RouterConfig | None = None,
    ) -> None:
        self.app = create_app(GatewaySettings(local, api_key=api_key, router=router), engines)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(self.app, loop="asyncio", http="httptools", access_log=False, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def __enter__(self) -> RunningGateway:
        self.thread.start()
        end = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > end or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()

    def post(self, path: str, body: Any = None, key: str | None = KEY, **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return requests.post(self.url + path, json=body, headers=headers, timeout=20, **kw)

    def get(self, path: str, key: str | None = KEY) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.get(self.url + path, headers=headers, timeout=20)


def http_engine(name: str, kind: str, url: str, model: str = "m", **kw: Any) -> EngineSpec:
    return EngineSpec(name=name, kind=kind, base_url=url, models=[model], **kw)  # type: ignore[arg-type]


def custom(*engines: EngineSpec, **kw: Any) -> LocalConfig:
    kw.setdefault("rate_limit", {"per_key_per_s": 1000, "burst": 1000})
    return LocalConfig(profile="custom", engines=list(engines), **kw)
