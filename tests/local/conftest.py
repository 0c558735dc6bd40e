from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.local.fakes import LoopThread


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()
