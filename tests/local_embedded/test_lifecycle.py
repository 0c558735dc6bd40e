"""Cancellation, stop, bad settings and bad requests: clear errors and no leaked batch slots."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from local.embedded.api import GenerationRequest
from local.embedded.engine import EmbeddedEngine
from local.embedded.errors import EmbeddedEngineError, EngineSetupError, InvalidRequestError
from local.embedded.settings import EmbeddedSettings
from tests.local_embedded.conftest import collect, run

# A prompt on which both tiny models stream text early (random weights can emit undecodable bytes for a while).
LONG = GenerationRequest(prompt="The quick brown fox", max_tokens=64, temperature=0.0)


async def _wait_free(engine: EmbeddedEngine, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.slots_in_use() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def test_closing_the_stream_frees_the_slot(gpt2_engine: EmbeddedEngine) -> None:
    async def scenario() -> tuple[int, int]:
        stream = gpt2_engine.stream(LONG)
        await anext(aiter(stream))
        held = gpt2_engine.slots_in_use()
        await stream.aclose()  # type: ignore[attr-defined]
        await _wait_free(gpt2_engine)
        return held, gpt2_engine.slots_in_use()

    assert run(scenario()) == (1, 0)


def test_cancelling_the_task_frees_the_slot_and_others_finish(gpt2_engine: EmbeddedEngine) -> None:
    async def consume() -> None:
        async for _ in gpt2_engine.stream(LONG):
            await asyncio.sleep(0.001)

    async def scenario() -> tuple[int, str | None]:
        victims = [asyncio.create_task(consume()) for _ in range(3)]
        survivor = asyncio.create_task(collect(gpt2_engine, GenerationRequest(prompt="What", max_tokens=30, seed=1)))
        await asyncio.sleep(0.05)
        for task in victims:
            task.cancel()
        await asyncio.gather(*victims, return_exceptions=True)
        _, chunks = await survivor
        await _wait_free(gpt2_engine)
        return gpt2_engine.slots_in_use(), chunks[-1].finish_reason

    free, reason = run(scenario())
    assert free == 0
    assert reason in ("stop", "length")


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 65}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": "word " * 200}, "prompt"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "messages"),  # both prompt and messages
        ({"prompt": None}, "messages"),  # neither
        ({"prompt": None, "messages": []}, "messages"),
    ],
)
def test_bad_requests_name_the_field(gpt2_engine: EmbeddedEngine, change: dict[str, object], param: str) -> None:
    request = GenerationRequest(**{**GenerationRequest(prompt="Hello", max_tokens=16).__dict__, **change})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError) as info:
        run(collect(gpt2_engine, request))
    assert info.value.param == param
    assert str(info.value).startswith(f"{param}:")
    assert gpt2_engine.slots_in_use() == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"device": "tpu"}, "device"),
        ({"dtype": "int8"}, "dtype"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_new_tokens_limit": 0}, "max_new_tokens_limit"),
        ({"kv_buckets": [0]}, "kv_buckets"),
        ({"compile": "maybe"}, "compile"),
        ({"unknown": 1}, "unknown"),
        ({"load_in_4bit": True, "device": "cpu"}, "load_in_4bit"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        EmbeddedSettings(model_dir=tmp_path, **fields)  # type: ignore[arg-type]
    assert field in str(info.value)


def test_missing_model_dir_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(EngineSetupError, match=r"^model_dir: .*config\.json"):
        EmbeddedEngine(EmbeddedSettings(model_dir=tmp_path / "nope"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU errors")
def test_gpu_only_options_fail_clearly_without_a_gpu(model_dirs: dict[str, Path]) -> None:
    with pytest.raises(EngineSetupError, match=r"^device: 'cuda' requested"):
        EmbeddedEngine(EmbeddedSettings(model_dir=model_dirs["gpt2"], device="cuda"))
    with pytest.raises(EngineSetupError, match=r"^load_in_4bit: .*CUDA"):
        EmbeddedEngine(EmbeddedSettings(model_dir=model_dirs["gpt2"], load_in_4bit=True))


def test_cpu_defaults_are_eager_in_a_native_dtype(model_dirs: dict[str, Path]) -> None:
    engine = EmbeddedEngine(EmbeddedSettings(model_dir=model_dirs["gpt2"], device="cpu"))
    placement = engine.placement
    # bfloat16 only where oneDNN runs it natively (AVX-512 BF16 / AMX); never emulated bfloat16.
    native_bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    expected = torch.bfloat16 if native_bf16 else torch.float32
    assert (placement.device.type, placement.dtype, placement.compile) == ("cpu", expected, False)
    assert engine.model_name == "tiny-smoke-test-gpt2"
    assert not engine.ready()


def test_stop_ends_pending_streams_with_an_error(model_dirs: dict[str, Path]) -> None:
    engine = EmbeddedEngine(
        EmbeddedSettings(model_dir=model_dirs["llama"], max_batch_size=2, max_input_tokens=960, max_new_tokens_limit=64)
    )

    async def scenario() -> list[object]:
        await engine.start()
        assert engine.ready()

        async def consume() -> None:
            async for _ in engine.stream(LONG):
                await asyncio.sleep(0.005)

        tasks = [asyncio.create_task(consume()) for _ in range(4)]  # two run, two wait for a slot
        await asyncio.sleep(0.05)
        await engine.stop()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = run(scenario())
    assert not engine.ready()
    assert all(isinstance(o, EmbeddedEngineError) for o in outcomes), outcomes
    with pytest.raises(EmbeddedEngineError):
        run(collect(engine, LONG))


def test_context_longer_than_the_models_positions_is_a_setup_error(model_dirs: dict[str, Path]) -> None:
    # The tiny models have 1024 positions; the defaults ask for 1024 + 512.
    engine = EmbeddedEngine(EmbeddedSettings(model_dir=model_dirs["gpt2"], max_input_tokens=1024))
    with pytest.raises(EngineSetupError, match=r"max_input_tokens \+ max_new_tokens_limit: 1024 \+ 512 = 1536 exceeds"):
        run(engine.start())


def test_memory_preflight_names_the_settings_when_the_gpu_is_too_small(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU the engine refuses to load when weights + its whole KV cache exceed the free memory (rather than an
    out-of-memory error half-way through loading or at the first full batch). The GPU's free memory is the only thing
    stood in for here: the estimate comes from the model's real config.json."""
    from local.embedded.loading import Placement, check_memory_fits, footprint

    settings = EmbeddedSettings(model_dir=model_dirs["gpt2"], max_batch_size=16)
    placement = Placement(device=torch.device("cuda", 0), dtype=torch.bfloat16, compile=False, load_in_4bit=False)
    need = footprint(settings, placement)
    assert need is not None and need.kv_tokens == 17 * settings.context_len  # + the scratch row
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(need.total_gib * 0.9 * 2**30), 2**34))
    with pytest.raises(EngineSetupError, match=r"^max_batch_size x \(max_input_tokens \+ max_new_tokens_limit\): 16 x"):
        check_memory_fits(settings, placement)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(need.total_gib * 1.1 * 2**30), 2**34))
    check_memory_fits(settings, placement)  # fits: no error
