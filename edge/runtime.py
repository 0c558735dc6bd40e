"""One interface over the three runtimes (PyTorch, ONNX Runtime, LiteRT): batch logits and batch-1 latency.

All runners get the same thread count, so latencies measured in one run compare side by side.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

#: Latency is measured in this many interleaved blocks per variant (see latency_table).
LATENCY_BLOCKS = 10
#: Untimed calls at the start of every block.
BLOCK_WARMUP = 3


class Runner(Protocol):
    """Something that maps ``(input_ids, attention_mask)`` int64 arrays to logits."""

    #: Static sequence length the artifact was built for (TFLite, Core ML); None = any length, any batch.
    fixed_len: int | None

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Logits ``[batch, num_labels]`` as float32."""
        ...


class TorchRunner:
    """PyTorch FP32 eager model (the reference every export is compared with)."""

    fixed_len: int | None = None

    def __init__(self, model: nn.Module, threads: int) -> None:
        torch.set_num_threads(threads)
        self.model = model.eval()

    @torch.inference_mode()
    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run the model; returns float32 logits."""
        out = self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        t = out if isinstance(out, torch.Tensor) else out.logits
        return np.asarray(t.float().numpy(), dtype=np.float32)


class OnnxRunner:
    """ONNX Runtime CPU session (all graph optimisations on)."""

    fixed_len: int | None = None

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.output = self.session.get_outputs()[0].name

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run the session; returns float32 logits."""
        out = self.session.run([self.output], {"input_ids": ids, "attention_mask": mask})[0]
        return np.asarray(out, dtype=np.float32)


class TfliteRunner:
    """LiteRT interpreter (XNNPACK on CPU) of a static ``[1, fixed_len]`` model; batches run row by row."""

    def __init__(self, path: Path, threads: int, fixed_len: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.fixed_len: int | None = fixed_len
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.runner = self.interpreter.get_signature_runner()
        self.output = self.interpreter.get_signature_list()["serving_default"]["outputs"][0]

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Pad each row to ``fixed_len`` and invoke once per row."""
        n = int(self.fixed_len or ids.shape[1])
        rows = []
        for i in range(ids.shape[0]):
            pid = np.zeros((1, n), np.int32)
            pm = np.zeros((1, n), np.int32)
            w = min(n, ids.shape[1])
            pid[0, :w], pm[0, :w] = ids[i, :w], mask[i, :w]
            rows.append(self.runner(input_ids=pid, attention_mask=pm)[self.output])
        return np.concatenate(rows).astype(np.float32)


def predict(runner: Runner, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Logits for every row, in input order.

    Dynamic-shape runners get batches of similar length, each cut to its longest row (padding costs time, not
    accuracy); static-shape runners pad every row to their fixed length themselves.
    """
    if runner.fixed_len is not None:
        parts = [
            runner.logits(ids[i : i + batch_size], mask[i : i + batch_size]) for i in range(0, len(ids), batch_size)
        ]
        return np.concatenate(parts)
    lengths = mask.sum(1)
    order = np.argsort(lengths, kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(1, int(lengths[idx].max()))
        got = runner.logits(np.ascontiguousarray(ids[idx, :width]), np.ascontiguousarray(mask[idx, :width]))
        if out is None:
            out = np.zeros((len(ids), got.shape[1]), dtype=np.float32)
        out[idx] = got
    assert out is not None
    return out


def latency_ms(runner: Runner, ids: np.ndarray, mask: np.ndarray, warmup: int, runs: int) -> tuple[float, float]:
    """p50 and p99 wall-clock latency in ms of one ``[1, L]`` call, after ``warmup`` untimed calls."""
    return latency_table({"x": runner}, ids, mask, warmup, runs)["x"]


def latency_table(
    runners: dict[str, Runner], ids: np.ndarray, mask: np.ndarray, warmup: int, runs: int, blocks: int = LATENCY_BLOCKS
) -> dict[str, tuple[float, float]]:
    """p50/p99 ms per runner, timed in interleaved blocks.

    Each runner gets ``runs / blocks`` timed calls per block, the runners taking turns block by block, so load from
    other processes on a shared machine spreads over all variants. Whole blocks (not single calls) keep one runtime's
    idle spinning threads (ONNX Runtime, XNNPACK) from eating the next runtime's timed calls; a few untimed calls
    open every block for the same reason.
    """
    for runner in runners.values():
        for _ in range(warmup):
            runner.logits(ids, mask)
    per_block = max(1, runs // blocks)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in tqdm(range(blocks), desc="latency", unit="block"):
        for name, runner in runners.items():
            for _ in range(BLOCK_WARMUP):
                runner.logits(ids, mask)
            for _ in range(per_block):
                t0 = time.perf_counter()
                runner.logits(ids, mask)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {n: (float(np.percentile(t, 50)), float(np.percentile(t, 99))) for n, t in times.items()}
