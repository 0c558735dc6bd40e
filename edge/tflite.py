"""TFLite with litert-torch (no TensorFlow needed), FP32 and dynamic-range INT8 with ai-edge-quantizer.

Phones want static shapes, so the model is converted for ``[1, max_seq_len]`` int32 inputs; the app pads.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from transformers import PreTrainedModel

from edge.teacher import LogitsModel


def export_tflite(model: PreTrainedModel, out: Path, max_seq_len: int) -> list[str]:
    """Convert to a FP32 ``.tflite`` with a ``serving_default`` signature taking ``input_ids``/``attention_mask``.

    Returns:
        The signature's input names in the order the flatbuffer stores them (the apps read this from meta.json).
    """
    import litert_torch

    ids = torch.ones((1, max_seq_len), dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge_model = litert_torch.convert(
            LogitsModel(model).eval(), sample_kwargs={"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        )
    edge_model.export(str(out))
    return tflite_signature(out)[0]


def tflite_signature(path: Path) -> tuple[list[str], list[str]]:
    """Input and output names of the ``serving_default`` signature, in flatbuffer order."""
    from ai_edge_litert.interpreter import Interpreter

    sig = Interpreter(model_path=str(path)).get_signature_list()["serving_default"]
    return [str(x) for x in sig["inputs"]], [str(x) for x in sig["outputs"]]


def quantize_tflite_int8(src: Path, out: Path) -> None:
    """Dynamic-range INT8: INT8 channel-wise weights, FP32 activations quantized on the fly by the kernels."""
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(str(src), recipe.dynamic_wi8_afp32())
    q.quantize(enable_progress_report=False).export_model(str(out), overwrite=True)
