"""Batched next-token choice with per-row temperature, top-p and seed, as one set of tensor ops.

Randomness is counter-based: the noise of row ``r`` for vocabulary entry ``v`` at generation step ``s`` is a hash of
``(seed_r, s, v)``. A request's output therefore depends only on its own seed, never on which other requests shared
the batch or on a global RNG, and the whole step stays a fixed graph that ``torch.compile`` can capture (no
per-row ``torch.Generator`` calls).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B1
_MIX_STEP = 0x85EBCA77
_MIX_INDEX = 0x27D4EB2F
SEED_MODULUS = 1 << 32


def _fmix32(x: torch.Tensor) -> torch.Tensor:
    # MurmurHash3's finaliser on int64 tensors holding 32-bit values; products wrap mod 2**64, the mask keeps 32 bits.
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _MASK32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _MASK32
    return x ^ (x >> 16)


def gumbel_noise(seeds: torch.Tensor, steps: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Deterministic Gumbel(0, 1) noise of shape ``[rows, vocab_size]``.

    Args:
        seeds: ``[rows]`` int64 seeds in ``[0, 2**32)``.
        steps: ``[rows]`` int64 generation step of each row.
        vocab_size: number of columns.
    Returns:
        float32 noise; ``argmax(logits / T + noise)`` samples from ``softmax(logits / T)``.
    """
    key = _fmix32((seeds * _GOLDEN + steps * _MIX_STEP) & _MASK32)
    index = torch.arange(vocab_size, device=seeds.device, dtype=torch.long)
    bits = _fmix32((key[:, None] + index[None, :] * _MIX_INDEX) & _MASK32)
    # 24 bits fit a float32 mantissa exactly; +0.5 keeps u strictly inside (0, 1) so both logs are finite.
    uniform = ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))
    return -torch.log(-torch.log(uniform))


def choose_tokens(
    logits: torch.Tensor,
    temperatures: torch.Tensor,
    top_ps: torch.Tensor,
    seeds: torch.Tensor,
    steps: torch.Tensor,
    apply_top_p: bool = True,
    noise_fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] = gumbel_noise,
) -> torch.Tensor:
    """Pick one token per row: greedy where temperature is 0, else seeded top-p sampling.

    Args:
        logits: ``[rows, vocab]`` scores of the next token.
        temperatures: ``[rows]`` float32; 0 means greedy.
        top_ps: ``[rows]`` float32 in ``(0, 1]``.
        seeds: ``[rows]`` int64 in ``[0, 2**32)``.
        steps: ``[rows]`` int64 index of the token being generated (0 for the first).
        apply_top_p: skip the sort when the caller knows every row has ``top_p == 1``.
        noise_fn: :func:`gumbel_noise` or a compiled version of it (same values).
    Returns:
        ``[rows]`` int64 token ids.
    """
    logits = logits.float()
    greedy = torch.argmax(logits, dim=-1)
    safe_t = torch.where(temperatures > 0, temperatures, torch.ones_like(temperatures))
    scaled = logits / safe_t[:, None]
    if apply_top_p:
        sorted_logits, sorted_idx = torch.sort(scaled, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the mass before it already reaches top_p; the most likely token always stays.
        drop_sorted = (torch.cumsum(probs, dim=-1) - probs) >= top_ps[:, None]
        drop = torch.zeros_like(drop_sorted).scatter(1, sorted_idx, drop_sorted)
        scaled = scaled.masked_fill(drop, float("-inf"))
    sampled = torch.argmax(scaled + noise_fn(seeds, steps, logits.shape[-1]), dim=-1)
    return torch.where(temperatures > 0, sampled, greedy)
