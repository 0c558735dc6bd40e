"""Streaming text pieces, stop strings, the seeded sampler and the grouped decode attention, on real tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from local.embedded.attention import slot_attention
from local.embedded.sampling import choose_tokens, gumbel_noise
from local.embedded.text import REPLACEMENT_CHAR, IncrementalDetokenizer, StopStringMatcher


@pytest.fixture(scope="module")
def tokenizer(model_dirs: dict[str, Path]) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dirs["gpt2"])


@pytest.mark.parametrize("text", ["写一首关于秋天的诗。你好", "Hello, 世界! 🙂 ok", 'JSON: {"name": "Zhang San"}'])
def test_detokenizer_never_splits_a_character(tokenizer: object, text: str) -> None:
    ids = tokenizer(text)["input_ids"]  # type: ignore[operator]
    # The byte-level tokenizer splits these characters over several tokens: the test is only meaningful then.
    pieces_per_token = [tokenizer.decode([i]) for i in ids]  # type: ignore[attr-defined]
    if any(c in "写秋世🙂" for c in text):
        assert any(REPLACEMENT_CHAR in p for p in pieces_per_token)
    detok = IncrementalDetokenizer(tokenizer, prompt_ids=tokenizer("Hi")["input_ids"])  # type: ignore[operator]
    chunks = [detok.push(i) for i in ids] + [detok.flush()]
    assert all(REPLACEMENT_CHAR not in c for c in chunks)
    assert "".join(chunks) == tokenizer.decode(ids)  # type: ignore[attr-defined]


def test_stop_matcher_holds_possible_prefixes() -> None:
    matcher = StopStringMatcher(["</end>", "STOP"])
    assert matcher.feed("hello <") == ("hello ", False)
    assert matcher.feed("/e") == ("", False)
    assert matcher.feed("x") == ("</ex", False)  # not a stop after all: released
    assert matcher.feed("ST") == ("", False)
    assert matcher.feed("OP tail") == ("", True)
    assert StopStringMatcher(["ab"]).feed("xxabyy") == ("xx", True)
    held = StopStringMatcher(["abc"])
    assert held.feed("zab") == ("z", False)
    assert held.flush() == "ab"
    assert StopStringMatcher([]).feed("anything") == ("anything", False)


def test_noise_depends_only_on_seed_step_and_index() -> None:
    seeds = torch.tensor([1, 2, 1], dtype=torch.long)
    steps = torch.tensor([0, 0, 5], dtype=torch.long)
    noise = gumbel_noise(seeds, steps, 1000)
    assert noise.shape == (3, 1000)
    assert torch.isfinite(noise).all()
    again = gumbel_noise(seeds[[2, 0]], steps[[2, 0]], 1000)
    assert torch.equal(again[0], noise[2]) and torch.equal(again[1], noise[0])
    assert not torch.equal(noise[0], noise[1]) and not torch.equal(noise[0], noise[2])
    # Gumbel(0,1) has mean ~0.5772 and variance pi^2/6 ~ 1.645.
    big = gumbel_noise(torch.arange(64), torch.zeros(64, dtype=torch.long), 4096)
    assert abs(big.mean().item() - 0.5772) < 0.02
    assert abs(big.var().item() - 1.645) < 0.05


def test_sampling_follows_the_distribution_and_top_p() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    rows = 20000
    logits = probs.log().expand(rows, -1)
    ones = torch.ones(rows)
    picks = choose_tokens(logits, ones, ones, torch.arange(rows), torch.zeros(rows, dtype=torch.long))
    freq = torch.bincount(picks, minlength=4).float() / rows
    assert torch.allclose(freq, probs, atol=0.015)
    nucleus = choose_tokens(logits, ones, torch.full((rows,), 0.7), torch.arange(rows), torch.zeros(rows).long())
    assert set(nucleus.tolist()) == {0, 1}  # 0.5 + 0.3 covers 0.7; the tail is cut
    greedy = choose_tokens(logits[:3], torch.zeros(3), torch.ones(3), torch.arange(3), torch.zeros(3).long())
    assert greedy.tolist() == [0, 0, 0]


class _Module(torch.nn.Module):
    num_key_value_groups = 4
    is_causal = True


def test_grouped_decode_attention_equals_sdpa() -> None:
    torch.manual_seed(0)
    batch, heads, kv_heads, kv_len, dim = 3, 8, 2, 10, 16
    q = torch.randn(batch, heads, 1, dim)
    k = torch.randn(batch, kv_heads, kv_len, dim)
    v = torch.randn(batch, kv_heads, kv_len, dim)
    visible = torch.arange(kv_len)[None] <= torch.tensor([3, 9, 0])[:, None]
    mask = torch.where(visible, 0.0, torch.finfo(torch.float32).min)[:, None, None, :]
    out, _ = slot_attention(_Module(), q, k, v, mask, scaling=dim**-0.5)
    ref = F.scaled_dot_product_attention(
        q, k.repeat_interleave(4, dim=1), v.repeat_interleave(4, dim=1), attn_mask=mask
    ).transpose(1, 2)
    assert out.shape == (batch, 1, heads, dim)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
