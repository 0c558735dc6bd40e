"""Decode attention over the slot cache that reads grouped KV heads in place.

With an explicit mask, transformers' SDPA path repeats every KV head for each query head it serves (``repeat_kv``)
before calling the kernel, so a grouped-query model with 8 query heads per KV head reads and writes its whole KV
cache 8 times per decode step. Here a decode query (one token) is reshaped to ``[batch, kv_heads, group, dim]`` and
multiplied with the cache directly. Prompts (more than one query token) keep transformers' SDPA path.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

SLOT_ATTENTION = "llm_deploy_slot"


def slot_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention-interface function: ``[b, h, q, d]`` inputs, ``[b, q, h, d]`` output."""
    if query.shape[2] != 1:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        out, _ = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
        return out, None
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    scale = scaling if scaling is not None else dim**-0.5
    q = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    scores = torch.matmul(q, key.transpose(-1, -2)) * scale  # [b, kv_heads, group, kv_len]
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    probs = torch.softmax(scores.float(), dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # [b, kv_heads, group, d]
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


def use_slot_attention(model: Any) -> bool:
    """Switch ``model`` to :func:`slot_attention`; False (model unchanged) when this transformers refuses it."""
    try:
        from transformers import AttentionInterface

        AttentionInterface.register(SLOT_ATTENTION, slot_attention)
        model.set_attn_implementation(SLOT_ATTENTION)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        logger.warning("custom decode attention unavailable, keeping %s: %r", model.config._attn_implementation, exc)
        return False
    return True
