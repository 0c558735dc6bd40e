"""Core ML (``.mlpackage``, ML Program) with coremltools. Conversion works on Linux; running it needs macOS/iOS."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel

from edge.teacher import LogitsModel

#: iOS 16 / macOS 13 is the oldest target with ML Program + the ops BERT needs.
MIN_DEPLOYMENT = "iOS16"


def export_coreml(model: PreTrainedModel, out: Path, max_seq_len: int) -> None:
    """Convert a classifier (load it with eager attention) to ``out`` (.mlpackage) with int32 ``[1, L]`` inputs.

    coremltools' torch.export frontend needs core-ATen ops, hence ``run_decompositions()``.
    """
    import coremltools as ct

    ids = torch.ones((1, max_seq_len), dtype=torch.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(LogitsModel(model).eval(), (ids, torch.ones_like(ids))).run_decompositions()
        _drop_aliases(program)
        mlmodel = ct.convert(
            program,
            inputs=[
                ct.TensorType(name="input_ids", shape=(1, max_seq_len), dtype=np.int32),
                ct.TensorType(name="attention_mask", shape=(1, max_seq_len), dtype=np.int32),
            ],
            outputs=[ct.TensorType(name="logits")],
            minimum_deployment_target=getattr(ct.target, MIN_DEPLOYMENT),
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32,
        )
    mlmodel.save(str(out))


def _drop_aliases(program: torch.export.ExportedProgram) -> None:
    """Rewire ``aten.alias`` (a no-op view coremltools has no converter for) to its input.

    It appears when ``max_seq_len`` equals the position table size: slicing all positions becomes an alias.
    """
    graph = program.graph_module.graph
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target is torch.ops.aten.alias.default:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    program.graph_module.recompile()


def coreml_can_predict() -> bool:
    """Core ML predictions need Apple's runtime: only on macOS."""
    return sys.platform == "darwin"


def check_coreml(path: Path) -> list[str]:
    """Load the package's spec without compiling it and return its input names (proves the file is well formed)."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    return [i.name for i in spec.description.input]
