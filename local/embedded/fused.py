"""A fused CPU forward for Llama-family decoders (Llama, Mistral, Qwen2): fewer, larger products and fewer small ops.

On a CPU a decode step of a small model is ~200 weight-streaming products plus ~600 small ops, each paying the
eager dispatcher (docs/benchmarks/local_engine_cpu.md). transformers' modules run q/k/v and gate/up as separate
products, RMSNorm as ~7 kernels and rotary embedding as 5 per tensor. This forward reads the same weights, packed
once by oneDNN, as 4 products per layer (q|k|v, o, gate|up, down), with each RMSNorm's gain folded into the product
after it and the norm itself one LayerNorm kernel; q and k are rotated together in 3 kernels. It keeps transformers'
calling convention (``input_ids, position_ids, attention_mask, past_key_values, logits_to_keep``) and its KV-cache
contract (``past_key_values.update(key, value, layer)``), so the engine's scheduler and cache serve it unchanged.

It is built from a loaded transformers model and checked against it before it replaces it
(:func:`fuse_for_cpu`); a model it does not cover (other architectures, sliding-window attention within the
context, position-dependent rotary scaling) keeps transformers' modules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from local.embedded.cpu import PackedLinear
from local.embedded.kv_cache import ProbeCache

logger = logging.getLogger(__name__)

FAMILIES = frozenset({"llama", "mistral", "qwen2"})
# Rotary types whose angles depend on the position only (a table precomputed once is exact).
STATIC_ROPE = frozenset({"default", "linear", "llama3", "yarn"})
# The check before replacing transformers' modules: relative mean error of the logits on a probe prompt. On SmolLM2
# in bfloat16 the fused forward is 0.02 from transformers' (and as close to float32's logits as transformers' own
# bfloat16 forward); a negated sine table gives 0.16. In float32 the two agree to ~1e-7.
MAX_RELATIVE_ERROR = {torch.float32: 1e-3, torch.bfloat16: 0.05}
PROBE_TOKENS = 24
# Logits come out of a bfloat16 product rounded to bfloat16: 0.125 apart near 25, so two candidates a tenth apart
# can tie (SmolLM2's first answer token to "What is the capital of France?": "The" 25.33 vs "L" 25.24 in float32,
# both 25.38 in bfloat16, and the tie broke the wrong way). The top few are recomputed in float32 from the same
# bfloat16 weights and hidden state, so greedy choices and the top of the distribution are not rounding artefacts.
REFINED_LOGITS = 8


@dataclass
class _Out:
    """What the engine reads from a forward (transformers' ``CausalLMOutputWithPast.logits``)."""

    logits: torch.Tensor


class _Layer(torch.nn.Module):
    def __init__(self, layer: Any) -> None:
        super().__init__()
        attn, mlp = layer.self_attn, layer.mlp
        self.qkv = PackedLinear(_concat(attn.q_proj, attn.k_proj, attn.v_proj, scale=layer.input_layernorm.weight))
        self.o = PackedLinear(attn.o_proj)
        self.gate_up = PackedLinear(_concat(mlp.gate_proj, mlp.up_proj, scale=layer.post_attention_layernorm.weight))
        self.down = PackedLinear(mlp.down_proj)


class FusedDecoder(torch.nn.Module):
    """The forward described in the module docstring, over weights taken from ``model`` (which can then be freed).

    Args:
        model: a loaded transformers causal LM of a family in :data:`FAMILIES`, on the CPU (see :func:`why_not`).
        context_len: positions the engine's cache holds (the rotary table is precomputed up to it).
    """

    def __init__(self, model: Any, context_len: int) -> None:
        super().__init__()
        cfg = model.config
        inner = model.model
        self.config = cfg
        self.generation_config = getattr(model, "generation_config", None)
        attn = inner.layers[0].self_attn
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(attn.head_dim)
        self.scale = float(getattr(attn, "scaling", self.head_dim**-0.5))
        self.hidden = int(cfg.hidden_size)
        self.intermediate = int(inner.layers[0].mlp.gate_proj.out_features)
        self.eps = float(inner.norm.variance_epsilon)
        self._stack = [_Layer(layer) for layer in inner.layers]
        self.layers = torch.nn.ModuleList(self._stack)  # registered, so .modules() finds the packed layers
        self.embed = inner.embed_tokens.weight.detach()
        head = model.get_output_embeddings()
        self.head = PackedLinear(_concat(head, scale=inner.norm.weight))
        # For the float32 recomputation of the top logits: the unpacked head (the embedding table itself when tied,
        # so no extra memory), the final norm's gain and the head's bias.
        self.head_weight = head.weight.detach()
        self.head_gain = inner.norm.weight.detach().float()
        self.head_bias = None if head.bias is None else head.bias.detach().float()
        dtype = self.embed.dtype
        positions = torch.arange(context_len)[None]
        cos, sin = inner.rotary_emb(torch.zeros((), dtype=dtype), positions)
        self.cos = cos[0].contiguous()  # [context, head_dim], the model's dtype
        half = self.head_dim // 2
        self.signed_sin = torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1).contiguous()

    def get_output_embeddings(self) -> PackedLinear:
        """The LM head (``out_features`` is the vocabulary size)."""
        return self.head

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        past_key_values: Any,
        use_cache: bool = True,
        logits_to_keep: torch.Tensor | None = None,
    ) -> _Out:
        """Logits ``[rows, width, vocab]`` (or ``[rows, k, vocab]`` for ``logits_to_keep``'s ``[rows, k]`` positions).

        Args:
            input_ids: ``[rows, width]`` tokens.
            position_ids: ``[rows, width]`` positions (index the rotary table).
            attention_mask: additive mask ``[rows, 1, width, kv_len]`` (a longer last dim is cut to the keys).
            past_key_values: the engine's cache (``update(key, value, layer) -> (keys, values)``).
        """
        rows, width = input_ids.shape
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        qk_heads = heads + kv_heads
        h = F.embedding(input_ids, self.embed)
        cos = self.cos[position_ids][:, :, None]  # [rows, width, 1, dim]: one angle table for q's and k's heads
        sin = self.signed_sin[position_ids][:, :, None]
        half = dim // 2
        for index, layer in enumerate(self._stack):
            x = self._rms_norm(h)
            qkv = layer.qkv(x).view(rows, width, qk_heads + kv_heads, dim)
            qk = qkv[:, :, :qk_heads]
            # Rotary embedding, q's and k's heads together: x*cos + rotate_half(x)*sin, where rotate_half(x)*sin is
            # the halves swapped times the sine table with its first half negated (3 kernels instead of 5).
            qk = torch.addcmul(qk * cos, torch.roll(qk, half, dims=-1), sin)
            q = qk[:, :, :heads].transpose(1, 2)
            keys, values = past_key_values.update(
                qk[:, :, heads:].transpose(1, 2), qkv[:, :, qk_heads:].transpose(1, 2), index
            )
            mask = attention_mask[..., : keys.shape[-2]]
            if width == 1:
                # One query per row: its heads, grouped by the KV head they share, are the "queries" of one
                # attention per KV head, so the cache is read in place (no repeated KV heads).
                grouped = q.reshape(rows, kv_heads, heads // kv_heads, dim)
                att = F.scaled_dot_product_attention(grouped, keys, values, attn_mask=mask, scale=self.scale)
                att = att.reshape(rows, 1, heads * dim)
            else:
                att = F.scaled_dot_product_attention(
                    q, keys, values, attn_mask=mask, scale=self.scale, enable_gqa=kv_heads != heads
                )
                att = att.transpose(1, 2).reshape(rows, width, heads * dim)
            h = h + layer.o(att)
            x = self._rms_norm(h)
            gate_up = layer.gate_up(x)
            h = h + layer.down(F.silu(gate_up[..., : self.intermediate]) * gate_up[..., self.intermediate :])
        if logits_to_keep is not None:
            h = h[torch.arange(rows, device=h.device)[:, None], logits_to_keep]
        return _Out(logits=self._logits(self._rms_norm(h)))

    def _rms_norm(self, h: torch.Tensor) -> torch.Tensor:
        """RMSNorm without its gain (folded into the next product's weights), as LayerNorm of ``[h, -h]``.

        ``[h, -h]`` has mean 0 and variance ``mean(h**2)``, so its LayerNorm is ``h / sqrt(mean(h**2) + eps)`` and its
        negation: exactly RMSNorm, with the same eps. LayerNorm is one native kernel on the CPU; ``F.rms_norm`` is
        ~7 (upcast, square, mean, add, rsqrt, multiply, downcast): 11-14 us fewer per norm, 61 norms per step.
        """
        both = torch.cat((h, h.neg()), dim=-1)
        return F.layer_norm(both, (2 * self.hidden,), None, None, self.eps)[..., : self.hidden]

    def _logits(self, normed: torch.Tensor) -> torch.Tensor:
        """float32 logits: the packed head's, with the top :data:`REFINED_LOGITS` per position recomputed in float32."""
        logits = self.head(normed)
        if logits.dtype == torch.float32:
            return logits
        top = logits.topk(min(REFINED_LOGITS, logits.shape[-1]), dim=-1).indices  # [rows, width, k]
        rows = self.head_weight[top].float()  # [rows, width, k, hidden]
        exact = torch.matmul(rows, (normed.float() * self.head_gain)[..., None])[..., 0]
        if self.head_bias is not None:
            exact = exact + self.head_bias[top]
        return logits.float().scatter_(-1, top, exact)


def why_not(model: Any, context_len: int) -> str | None:
    """Why :class:`FusedDecoder` cannot stand in for ``model`` (None: it can).

    Args:
        model: a loaded transformers causal LM.
        context_len: positions the engine's cache holds.
    """
    cfg = getattr(model, "config", None)
    family = getattr(cfg, "model_type", None)
    if family not in FAMILIES:
        return f"model_type {family!r} is not one of {sorted(FAMILIES)}"
    if getattr(cfg, "hidden_act", None) != "silu":
        return f"hidden_act {getattr(cfg, 'hidden_act', None)!r} (the fused MLP is SiLU-gated)"
    window = getattr(cfg, "sliding_window", None)
    if window and getattr(cfg, "use_sliding_window", True) and window < context_len:
        return f"sliding_window {window} < the engine's context {context_len}"
    inner = getattr(model, "model", None)
    rope_type = getattr(getattr(inner, "rotary_emb", None), "rope_type", None)
    if rope_type not in STATIC_ROPE:
        return f"rotary type {rope_type!r} (the fused forward precomputes position-only angles: {sorted(STATIC_ROPE)})"
    for layer in getattr(inner, "layers", ()):
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        names = [(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")] + [
            (mlp, n) for n in ("gate_proj", "up_proj", "down_proj")
        ]
        if any(type(getattr(owner, n, None)) is not torch.nn.Linear for owner, n in names):
            return "a decoder layer whose projections are not plain nn.Linear (quantized or custom modules)"
        if any(hasattr(attn, extra) for extra in ("q_norm", "k_norm")):
            return "per-head q/k normalisation"
    if not getattr(inner, "layers", None):
        return "no decoder layers found"
    return None


def fuse_for_cpu(model: Any, context_len: int) -> Any:
    """The fused forward for ``model`` when it covers it and agrees with it on a probe prompt, else ``model`` itself.

    Args:
        model: a loaded transformers causal LM on the CPU, in eval mode, linear layers not yet packed.
        context_len: positions the engine's cache holds.
    Returns:
        a :class:`FusedDecoder` (``model``'s decoder layers can then be freed) or ``model``, unchanged.
    """
    reason = why_not(model, context_len)
    if reason is not None:
        logger.info("fused CPU forward not used: %s; serving transformers' modules", reason)
        return model
    with torch.inference_mode():
        fused = FusedDecoder(model, context_len)
        error = _probe_error(model, fused)
    tolerance = MAX_RELATIVE_ERROR.get(fused.embed.dtype, MAX_RELATIVE_ERROR[torch.bfloat16])
    if error > tolerance:
        logger.warning(
            "fused CPU forward disagrees with transformers' (relative logit error %.3g > %.3g); serving "
            "transformers' modules",
            error,
            tolerance,
        )
        return model
    logger.info("fused CPU forward in use (relative logit error vs transformers %.2g)", error)
    return fused


def _concat(*linears: torch.nn.Linear, scale: torch.Tensor | None = None) -> torch.nn.Linear:
    """One ``nn.Linear`` whose outputs are the given layers' outputs, one after the other.

    ``scale`` (per input feature) is folded into the weight, in float32: the gain of the RMSNorm before the layer,
    which then takes the normalised input without it (one multiply fewer per norm).
    """
    weight = torch.cat([lin.weight.detach() for lin in linears])
    if scale is not None:
        weight = (weight.float() * scale.detach().float()).to(weight.dtype)
    out = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=any(lin.bias is not None for lin in linears))
    out.weight = torch.nn.Parameter(weight, requires_grad=False)
    if out.bias is not None:
        biases = [
            lin.bias.detach() if lin.bias is not None else torch.zeros(lin.out_features, dtype=weight.dtype)
            for lin in linears
        ]
        out.bias = torch.nn.Parameter(torch.cat(biases), requires_grad=False)
    return out


def _probe_error(model: Any, fused: FusedDecoder) -> float:
    """Mean |fused - transformers| over mean |transformers| of the logits of a fixed probe prompt."""
    vocab = int(fused.head.out_features)
    ids = (torch.arange(PROBE_TOKENS, dtype=torch.long) * 7919 % vocab)[None]
    positions = torch.arange(PROBE_TOKENS)[None]
    dtype = fused.embed.dtype
    allowed = torch.ones(PROBE_TOKENS, PROBE_TOKENS, dtype=torch.bool).tril()
    mask = torch.zeros(PROBE_TOKENS, PROBE_TOKENS, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    mask = mask[None, None]
    want = model(input_ids=ids, position_ids=positions, attention_mask=mask, use_cache=False).logits.float()
    got = fused(ids, positions, mask, ProbeCache()).logits.float()
    return float((got - want).abs().mean() / want.abs().mean().clamp_min(1e-6))
