"""Shared fixtures: the tiny smoke-test models and one started engine per architecture."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from local.embedded.api import GenerationChunk, GenerationRequest
from local.embedded.engine import EmbeddedEngine
from local.embedded.settings import EmbeddedSettings
from model_packages.tiny_model import build_tiny_model

T = TypeVar("T")
MAX_BATCH = 4


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a fresh event loop (the engine's thread serves any caller's loop)."""
    return asyncio.run(coro)


async def collect(engine: EmbeddedEngine, request: GenerationRequest) -> tuple[str, list[GenerationChunk]]:
    """Stream a request to the end; return the joined text and the chunks."""
    chunks = [chunk async for chunk in engine.stream(request)]
    return "".join(c.text for c in chunks), chunks


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("embedded-models")
    return {arch: build_tiny_model(root / arch, arch=arch) for arch in ("gpt2", "llama")}


def start_engine(model_dir: Path, **overrides: Any) -> EmbeddedEngine:
    # float32: the tests compare token for token with transformers' generate in float32 (auto may pick bfloat16).
    settings = EmbeddedSettings(
        **{
            "model_dir": model_dir,
            "max_batch_size": MAX_BATCH,
            "max_input_tokens": 96,
            "max_new_tokens_limit": 64,
            "dtype": "float32",
            **overrides,
        }
    )
    engine = EmbeddedEngine(settings)
    run(engine.start())
    return engine


@pytest.fixture(scope="session", params=["gpt2", "llama"])
def engine(request: pytest.FixtureRequest, model_dirs: dict[str, Path]) -> Iterator[EmbeddedEngine]:
    eng = start_engine(model_dirs[request.param])
    yield eng
    run(eng.stop())


@pytest.fixture(scope="session")
def gpt2_engine(model_dirs: dict[str, Path]) -> Iterator[EmbeddedEngine]:
    eng = start_engine(model_dirs["gpt2"])
    yield eng
    run(eng.stop())
