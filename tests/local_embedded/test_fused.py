"""The fused CPU forward (local.embedded.fused): the same logits as transformers' modules, through the engine's cache,
for the families it covers; everything else keeps transformers' modules."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from local.embedded import fused as fused_module
from local.embedded.cpu import PackedLinear, onednn_supports
from local.embedded.fused import FusedDecoder, fuse_for_cpu, why_not
from local.embedded.kv_cache import ProbeCache, SlotKVCache
from tests.local_embedded.conftest import run, start_engine

pytestmark = pytest.mark.skipif(not onednn_supports(torch.float32), reason="this torch has no oneDNN")
SMALL = {
    "vocab_size": 97,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}


def _model(cls: Any, config: Any) -> Any:
    torch.manual_seed(0)
    model = cls(config).eval()
    with torch.no_grad():  # gains away from 1, so a gain that is dropped or applied twice shows in the logits
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                p.uniform_(0.5, 1.5)
    return model


def _mask(width: int, rows: int) -> torch.Tensor:
    allowed = torch.ones(width, width, dtype=torch.bool).tril()
    mask = torch.zeros(width, width).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return mask[None, None].expand(rows, 1, width, width)


def _prefill_then_decode(model: Any, ids: torch.Tensor, steps: int) -> torch.Tensor:
    """Logits of a prefill and ``steps`` greedy decode steps through the engine's slot cache (rows at one length)."""
    rows, width = ids.shape
    cfg = model.config
    heads = getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    dim = cfg.hidden_size // cfg.num_attention_heads
    cache = SlotKVCache([(heads, dim)] * cfg.num_hidden_layers, rows, 64, torch.float32, torch.device("cpu"))
    cache.set_prefill(torch.arange(rows))
    positions = torch.arange(width)[None].expand(rows, -1)
    out = [model(input_ids=ids, position_ids=positions, attention_mask=_mask(width, rows), past_key_values=cache)]
    token = out[-1].logits[:, -1:].argmax(-1)
    for step in range(steps):
        pos = torch.full((rows,), width + step)
        cache.set_decode(pos, width + step + 1)
        mask = torch.zeros(rows, 1, 1, width + step + 1)
        out.append(model(input_ids=token, position_ids=pos[:, None], attention_mask=mask, past_key_values=cache))
        token = out[-1].logits[:, -1:].argmax(-1)
    return torch.cat([o.logits[:, -1] for o in out])


@pytest.mark.parametrize(
    ("cls", "config"),
    [
        (LlamaForCausalLM, LlamaConfig(**SMALL)),
        (MistralForCausalLM, MistralConfig(**SMALL, sliding_window=None)),
        (Qwen2ForCausalLM, Qwen2Config(**SMALL)),  # q/k/v with biases
        (LlamaForCausalLM, LlamaConfig(**SMALL, rope_scaling={"rope_type": "linear", "factor": 2.0})),
    ],
    ids=["llama", "mistral", "qwen2-bias", "llama-linear-rope"],
)
def test_fused_equals_transformers_through_the_slot_cache(cls: Any, config: Any) -> None:
    model = _model(cls, config)
    assert why_not(model, 64) is None
    ids = torch.tensor([[5, 17, 3, 88, 41, 9], [60, 2, 2, 71, 13, 30]])
    with torch.inference_mode():
        want = _prefill_then_decode(model, ids, steps=4)
        fused = FusedDecoder(model, 64)
        got = _prefill_then_decode(fused, ids, steps=4)
    assert sum(isinstance(m, PackedLinear) for m in fused.modules()) == 4 * config.num_hidden_layers + 1
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_logits_to_keep_selects_positions() -> None:
    model = _model(LlamaForCausalLM, LlamaConfig(**SMALL))
    ids = torch.tensor([[5, 17, 3, 88], [60, 2, 2, 71]])
    with torch.inference_mode():
        fused = FusedDecoder(model, 64)
        full = fused(ids, torch.arange(4)[None].expand(2, -1), _mask(4, 2), ProbeCache()).logits
        keep = torch.tensor([[3], [1]])
        some = fused(ids, torch.arange(4)[None].expand(2, -1), _mask(4, 2), ProbeCache(), True, keep)
    torch.testing.assert_close(some.logits[:, 0], full[torch.arange(2), keep[:, 0]])


def test_uncovered_models_keep_transformers_modules(model_dirs: dict[str, Path]) -> None:
    gpt2 = AutoModelForCausalLM.from_pretrained(model_dirs["gpt2"])
    assert "model_type 'gpt2'" in (why_not(gpt2, 64) or "")
    assert fuse_for_cpu(gpt2, 64) is gpt2
    windowed = _model(MistralForCausalLM, MistralConfig(**SMALL, sliding_window=16))
    assert "sliding_window 16" in (why_not(windowed, 64) or "")
    assert why_not(windowed, 16) is None  # the window covers the whole context: plain causal attention
    dynamic = _model(LlamaForCausalLM, LlamaConfig(**SMALL, rope_scaling={"rope_type": "dynamic", "factor": 2.0}))
    assert "rotary type 'dynamic'" in (why_not(dynamic, 64) or "")


def test_a_fused_forward_that_disagrees_is_not_used(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    """The probe check catches a wrong rotation (here: the sine table negated after it was built)."""
    model = _model(LlamaForCausalLM, LlamaConfig(**SMALL))
    assert isinstance(fuse_for_cpu(model, 64), FusedDecoder)
    built = FusedDecoder.__init__

    def broken(self: FusedDecoder, model: Any, context_len: int) -> None:
        built(self, model, context_len)
        self.signed_sin = -self.signed_sin

    monkeypatch.setattr(FusedDecoder, "__init__", broken)
    with caplog.at_level(logging.WARNING, logger="local.embedded.fused"):
        assert fuse_for_cpu(model, 64) is model
    assert "disagrees" in caplog.text


def test_engine_serves_llama_through_the_fused_forward_and_can_turn_it_off(model_dirs: dict[str, Path]) -> None:
    for fused, want in ((True, FusedDecoder), (False, LlamaForCausalLM)):
        engine = start_engine(model_dirs["llama"], device="cpu", cpu_fused=fused)
        try:
            assert type(engine._model) is want
        finally:
            run(engine.stop())


def test_top_logits_are_recomputed_in_float32_for_a_bfloat16_model() -> None:
    """bfloat16 logits are 0.125 apart near 25: the top ones come back as the float32 product of the same weights."""
    model = _model(LlamaForCausalLM, LlamaConfig(**SMALL)).to(torch.bfloat16)
    ids = torch.tensor([[5, 17, 3, 88]])
    positions = torch.arange(4)[None]
    mask = _mask(4, 1).to(torch.bfloat16)
    captured: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        fused = FusedDecoder(model, 64)
        packed_head = fused.head.forward

        def head(x: torch.Tensor) -> torch.Tensor:
            captured["normed"] = x
            return packed_head(x)

        fused.head.forward = head  # type: ignore[method-assign]
        logits = fused(ids, positions, mask, ProbeCache()).logits
    assert logits.dtype == torch.float32
    exact = captured["normed"].float() * model.model.norm.weight.float() @ model.lm_head.weight.float().T
    top = logits.topk(fused_module.REFINED_LOGITS, dim=-1).indices
    torch.testing.assert_close(logits.gather(-1, top), exact.gather(-1, top), rtol=1e-5, atol=1e-5)
    rest = torch.ones_like(logits, dtype=torch.bool).scatter_(-1, top, False)
    assert torch.equal(logits[rest], logits[rest].to(torch.bfloat16).float())  # the others: bfloat16 values
