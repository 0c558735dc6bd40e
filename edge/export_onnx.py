"""Export the student to ONNX (dynamic batch and sequence axes) with the torch.onnx dynamo exporter."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch.export import Dim
from transformers import PreTrainedModel

from edge.teacher import LogitsModel

INPUT_NAMES = ["input_ids", "attention_mask"]
OUTPUT_NAME = "logits"


def export_onnx(model: PreTrainedModel, out: Path, opset: int, max_seq_len: int) -> None:
    """Write ``model`` as a single-file ONNX graph ``(input_ids, attention_mask) -> logits``.

    Args:
        model: a sequence classifier in eval mode.
        out: the .onnx file to write.
        opset: ONNX opset (validated by the config: 18..23).
        max_seq_len: upper bound of the dynamic sequence axis (BERT's position table).
    """
    wrapper = LogitsModel(model).eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones_like(ids)
    batch, seq = Dim("batch", max=1024), Dim("sequence", max=max_seq_len)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(out),
            input_names=INPUT_NAMES,
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
