"""A slot-based static KV cache: one row per batch slot, each row at its own position.

transformers' ``StaticCache`` writes every row at the same cache position, so sequences that joined the batch at
different times cannot share it. This cache is a duck-typed stand-in for ``transformers.Cache``: the attention
layers of transformers 5.x only call ``update(key, value, layer_idx)`` when they get a 4D attention mask (which the
engine always passes), so one small class works for every decoder-only model whose layers follow that convention.

Two modes:
- ``prefill``: ``rows`` slots get a right-padded prompt batch written at positions ``[0, L)``; attention runs over the
  fresh keys only.
- ``decode``: slots ``[0, rows)`` (every slot in a compiled step) each write one token at their own position
  ``positions[row]`` and attend over the first ``kv_len`` cache positions (a bucket when compiled, so the step sees
  a handful of shapes, not one per length).
"""

from __future__ import annotations

from typing import Any, Literal

import torch


class SlotKVCache:
    """Static per-slot key/value tensors of shape ``[slots, kv_heads, context, head_dim]`` per layer.

    Args:
        layer_shapes: per layer, ``(kv_heads, head_dim)`` as probed from the model.
        slots: batch slots (rows).
        context_len: positions per slot.
        dtype: cache dtype (the model's compute dtype).
        device: where the cache lives.
    """

    # Read by transformers' mask helpers on some code paths; a static cache is what this is.
    is_compileable = True

    def __init__(
        self,
        layer_shapes: list[tuple[int, int]],
        slots: int,
        context_len: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.slots = slots
        self.context_len = context_len
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        for kv_heads, head_dim in layer_shapes:
            k = torch.zeros(slots, kv_heads, context_len, head_dim, dtype=dtype, device=device)
            v = torch.zeros(slots, kv_heads, context_len, head_dim, dtype=dtype, device=device)
            if device.type == "cuda":
                # Fixed addresses let CUDA graphs read and write the cache in place instead of copying it per replay.
                torch._dynamo.mark_static_address(k)
                torch._dynamo.mark_static_address(v)
            self.keys.append(k)
            self.values.append(v)
        self.mode: Literal["prefill", "decode"] = "decode"
        self.rows: torch.Tensor = torch.arange(slots, device=device)
        self.positions: torch.Tensor = torch.zeros(slots, dtype=torch.long, device=device)
        self.kv_len = context_len
        self._all_rows = torch.arange(slots, device=device)

    def set_prefill(self, rows: torch.Tensor) -> None:
        """Next forward writes a right-padded prompt batch into ``rows`` at positions ``[0, L)``."""
        self.mode = "prefill"
        self.rows = rows

    def set_decode(self, positions: torch.Tensor, kv_len: int) -> None:
        """Next forward writes one token per slot ``[0, len(positions))`` at ``positions``, attending over ``kv_len``."""
        self.mode = "decode"
        self.positions = positions
        self.kv_len = kv_len

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        cache_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new keys/values of one layer and return what attention should use (transformers' contract)."""
        k_cache, v_cache = self.keys[layer_idx], self.values[layer_idx]
        if self.mode == "prefill":
            length = key_states.shape[2]
            k_cache[self.rows, :, :length] = key_states
            v_cache[self.rows, :, :length] = value_states
            return key_states, value_states
        # Slots [0, rows) take part (all of them in a compiled step). Advanced indices split by a slice put the
        # broadcast dim first: the target is [rows, kv_heads, head_dim].
        rows = key_states.shape[0]
        if rows == self.slots:  # every slot (the compiled step): the same expressions the CUDA graphs captured
            k_cache[self._all_rows, :, self.positions] = key_states[:, :, 0]
            v_cache[self._all_rows, :, self.positions] = value_states[:, :, 0]
            return k_cache[:, :, : self.kv_len], v_cache[:, :, : self.kv_len]
        k_cache[self._all_rows[:rows], :, self.positions] = key_states[:, :, 0]
        v_cache[self._all_rows[:rows], :, self.positions] = value_states[:, :, 0]
        return k_cache[:rows, :, : self.kv_len], v_cache[:rows, :, : self.kv_len]

    # The few other Cache methods model code may call on paths the engine does not take; safe answers.
    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Unused by the engine (it always passes position ids); 0 keeps callers safe."""
        return 0

    def __len__(self) -> int:
        return len(self.keys)


class ProbeCache:
    """Records each layer's ``(kv_heads, head_dim)`` and dtype during one tiny forward, to size a :class:`SlotKVCache`."""

    is_compileable = False

    def __init__(self) -> None:
        self.shapes: dict[int, tuple[int, int]] = {}
        self.dtype: torch.dtype | None = None

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        cache_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Note the shape and pass the states through (no past)."""
        self.shapes[layer_idx] = (int(key_states.shape[1]), int(key_states.shape[3]))
        self.dtype = key_states.dtype
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """No past tokens."""
        return 0

    def layer_shapes(self) -> list[tuple[int, int]]:
        """Shapes in layer order.

        Raises:
            RuntimeError: the model never called ``update`` (not a transformers 5.x-style decoder).
        """
        if not self.shapes or sorted(self.shapes) != list(range(len(self.shapes))):
            raise RuntimeError(
                "the model's attention layers did not call past_key_values.update(); "
                "the embedded engine supports transformers decoder-only models (Llama, GPT-2, Qwen, Mistral, ...)"
            )
        return [self.shapes[i] for i in range(len(self.shapes))]
