"""oneDNN-packed linear layers (local.embedded.cpu): the same products as ``nn.Linear``, on any thread setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from local.embedded.api import GenerationRequest
from local.embedded.cpu import PackedLinear, ThreadTuner, onednn_supports, pack_linears, set_linear_threads
from local.embedded.settings import EmbeddedSettings
from tests.local_embedded.conftest import collect, run, start_engine
from tests.local_embedded.test_generation import PROMPTS, greedy_reference

pytestmark = pytest.mark.skipif(not onednn_supports(torch.float32), reason="this torch has no oneDNN")


@pytest.mark.parametrize("threads", [None, 1, 2])
@pytest.mark.parametrize("rows", [1, 3])
def test_packed_linear_equals_linear_and_keeps_the_thread_setting(threads: int | None, rows: int) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48, bias=True)
    packed = PackedLinear(linear, threads)
    x = torch.randn(rows, 5, 64)
    before = torch.get_num_threads()
    with torch.inference_mode():
        got, want = packed(x), linear(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.get_num_threads() == before  # a per-layer thread count never leaks into the rest of the step


def test_pack_linears_replaces_every_linear_with_the_thread_setting() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(8, 4)))
    assert pack_linears(model, torch.float32) == 2
    assert set_linear_threads(model, 2) == 2
    layers = [m for m in model.modules() if isinstance(m, PackedLinear)]
    assert len(layers) == 2 and all(m.threads == 2 for m in layers)
    assert not any(type(m) is torch.nn.Linear for m in model.modules())


def test_linear_threads_engine_matches_generate(model_dirs: dict[str, Path]) -> None:
    """Linear layers on two threads, the rest on one: still transformers' greedy tokens."""
    engine = start_engine(model_dirs["llama"], device="cpu", cpu_linear_threads=2)
    try:
        ids = engine.prompt_token_ids(GenerationRequest(prompt=PROMPTS[1], max_tokens=12))
        text, chunks = run(collect(engine, GenerationRequest(prompt=PROMPTS[1], max_tokens=12, temperature=0.0)))
        want_text, want_n, _ = greedy_reference(model_dirs["llama"], ids, 12)
        assert text == want_text and chunks[-1].completion_tokens == want_n
    finally:
        run(engine.stop())


@pytest.mark.parametrize("bad", [0, "fast", 2048])
def test_linear_threads_is_validated(tmp_path: Path, bad: object) -> None:
    assert EmbeddedSettings(model_dir=tmp_path).cpu_linear_threads == "auto"
    with pytest.raises(ValidationError, match="cpu_linear_threads"):
        EmbeddedSettings(model_dir=tmp_path, cpu_linear_threads=bad)


# ---- the thread tuner: fed step times that depend on the thread count the layers are set to ---------------------
def _packed() -> tuple[torch.nn.Module, list[PackedLinear]]:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
    pack_linears(model, torch.float32)
    return model, [m for m in model.modules() if isinstance(m, PackedLinear)]


def _serve(tuner: ThreadTuner, layers: list[PackedLinear], step_s: dict[int, float], steps: int, rows: int = 1) -> int:
    """Run ``steps`` decode steps whose time depends on the layers' current thread count; return how many ran on 2."""
    on_two = 0
    for _ in range(steps):
        threads = layers[0].threads
        assert all(m.threads == threads for m in layers)
        on_two += threads == 2
        tuner.observe(rows, step_s[threads or 1])
    return on_two


def test_tuner_moves_to_the_faster_choice_and_back_when_it_turns_slow() -> None:
    model, layers = _packed()
    tuner = ThreadTuner(model, (1, 2), probe_steps=4, interval=8)
    assert tuner.current == 1 and all(m.threads == 1 for m in layers)
    _serve(tuner, layers, {1: 0.030, 2: 0.022}, steps=14)  # an idle host: two cores stream faster
    assert (tuner.current, tuner.switches, tuner.probing) == (2, 1, False) and all(m.threads == 2 for m in layers)
    _serve(tuner, layers, {1: 0.030, 2: 0.070}, steps=24)  # a neighbour took the second core
    assert (tuner.current, tuner.switches, tuner.probing) == (1, 2, False) and all(m.threads == 1 for m in layers)


def test_tuner_keeps_probing_a_loser_rarely() -> None:
    model, layers = _packed()
    tuner = ThreadTuner(model, (1, 2), probe_steps=4, interval=8, max_interval=1024)
    on_two = _serve(tuner, layers, {1: 0.030, 2: 0.070}, steps=5000)
    assert tuner.current == 1 and tuner.switches == 0
    assert 0 < on_two < 0.01 * 5000  # still measured now and then, at under 1% of the steps
    _serve(tuner, layers, {1: 0.030, 2: 0.020}, steps=1100)  # ... so it notices when the host frees up
    assert tuner.current == 2


def test_tuner_does_not_compare_steps_of_different_batch_sizes() -> None:
    model, layers = _packed()
    tuner = ThreadTuner(model, (1, 2), probe_steps=4, interval=4)
    _serve(tuner, layers, {1: 0.030, 2: 0.030}, steps=4, rows=8)
    # The probe's steps have one row (much cheaper) while the baseline had eight: not a fair win, no switch.
    _serve(tuner, layers, {1: 0.030, 2: 0.010}, steps=4, rows=1)
    assert tuner.switches == 0 and tuner.current == 1 and not tuner.probing


def test_auto_engine_has_a_tuner_only_with_cpus_to_spare(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from local.embedded import loading

    monkeypatch.setattr(loading, "cpu_count", lambda: 4)
    engine = start_engine(model_dirs["llama"], device="cpu", cpu_threads=1)
    try:
        tuner = engine._scheduler._tuner if engine._scheduler else None
        assert tuner is not None and tuner.choices == (1, 4)
    finally:
        run(engine.stop())
    engine = start_engine(model_dirs["llama"], device="cpu", cpu_threads=1, cpu_linear_threads=1)
    try:
        assert engine._scheduler is not None and engine._scheduler._tuner is None
    finally:
        run(engine.stop())


@pytest.mark.parametrize(("native", "want"), [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_is_bfloat16_only_where_the_cpu_multiplies_it_natively(
    monkeypatch: pytest.MonkeyPatch, native: bool, want: torch.dtype
) -> None:
    """oneDNN runs bfloat16 on any AVX-512 CPU by converting to float32 (slower than float32): auto must not pick it
    there, whatever oneDNN reports."""
    from local.embedded import loading

    monkeypatch.setattr(loading, "native_bf16", lambda: native)
    monkeypatch.setattr(loading, "onednn_supports", lambda dtype: True)
    assert loading.auto_dtype(torch.device("cpu")) == want
