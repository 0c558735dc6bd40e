"""oneDNN-packed linear layers (local.embedded.cpu): the same products as ``nn.Linear``, on any thread setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from local.embedded.api import GenerationRequest
from local.embedded.cpu import PackedLinear, onednn_supports, pack_linears
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
    assert pack_linears(model, torch.float32, threads=2) == 2
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


def test_linear_threads_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cpu_linear_threads"):
        EmbeddedSettings(model_dir=tmp_path, cpu_linear_threads=0)


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
