"""INT8 ONNX variants with ONNX Runtime quantization.

* dynamic: weights INT8 ahead of time, activations quantized per call (``MatMulInteger``) — the CPU target;
* static Q/DQ: explicit QuantizeLinear/DequantizeLinear pairs with calibrated scales, restricted to MatMul and Gather
  and symmetric — the TensorRT-ready variant (TensorRT 10+ builds INT8 layers from explicit Q/DQ). Quantizing every
  op type (LayerNorm, Softmax, GELU, residual adds) destroys BERT accuracy, so those stay FP32.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

#: The two op types worth INT8 in BERT: the projections/FFN (MatMul) and the embedding lookups (Gather).
QUANT_OP_TYPES = ["MatMul", "Gather"]
#: Names the dynamic INT8 recipe in the step cache key: change it when quantize_dynamic_int8 changes.
DYNAMIC_INT8_RECIPE = "bert-fusions+per-channel"


def quantize_dynamic_int8(src: Path, out: Path) -> None:
    """Dynamic INT8 (per-channel weights, QInt8) of MatMul and Gather, after ONNX Runtime's BERT graph fusions.

    The fusions (residual add + LayerNorm -> SkipLayerNormalization, bias + erf GELU -> BiasGelu) run on the FP32
    graph first, so the quantized graph keeps them (docs/benchmarks/edge.md has the measured effect); per-channel
    weight scales keep more predictions of the FP32 model than one scale per tensor at the same speed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger().setLevel(logging.ERROR)  # ORT nags about pre-processing on the root logger
    fused = out.with_suffix(".fused.onnx")
    # num_heads/hidden_size 0: read from the graph (they only matter for attention fusion, which this graph skips).
    optimize_model(str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=1).save_model_to_file(str(fused))
    try:
        quantize_dynamic(
            str(fused), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=QUANT_OP_TYPES, per_channel=True
        )
    finally:
        fused.unlink(missing_ok=True)


def quantize_static_qdq(src: Path, out: Path, calibration: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Static symmetric INT8 in Q/DQ format (per-channel weights), calibrated by MinMax on ``calibration`` batches.

    Args:
        src: FP32 ONNX model.
        out: where to write the Q/DQ model.
        calibration: ``(input_ids, attention_mask)`` pairs from the training split.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        """Feeds the calibration batches once, then None (what quantize_static expects)."""

        def __init__(self) -> None:
            self._it: Iterator[tuple[np.ndarray, np.ndarray]] = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            nxt = next(self._it, None)
            return None if nxt is None else {"input_ids": nxt[0], "attention_mask": nxt[1]}

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(
        str(src),
        str(out),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=QUANT_OP_TYPES,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
