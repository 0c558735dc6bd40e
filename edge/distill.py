"""DistilBERT recipe: a student with fewer layers, initialised from every other teacher layer, trained on
soft-target KL at a temperature plus hard-label cross-entropy; the teacher's soft targets are computed once."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from transformers import PreTrainedModel

from config.edge_section import EdgeStudentConfig
from edge.dataset import Example
from edge.errors import EdgeInputError
from edge.teacher import accuracy, fit


def teacher_layer_indices(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layers the student copies: evenly spaced, first layer included ([0, 2, 4] for 6 -> 3).

    Raises:
        EdgeInputError: the student would have as many layers as the teacher or more.
    """
    if not 0 < student_layers < teacher_layers:
        raise EdgeInputError(
            f"edge.student.num_layers: {student_layers} must be between 1 and the teacher's {teacher_layers - 1}"
        )
    step = teacher_layers / student_layers
    return [int(i * step) for i in range(student_layers)]


def make_student(teacher: PreTrainedModel, student_layers: int) -> PreTrainedModel:
    """Copy the teacher, keep only the chosen encoder layers (embeddings, pooler and head come along)."""
    n_teacher = int(teacher.config.num_hidden_layers)
    keep = teacher_layer_indices(n_teacher, student_layers)
    student = copy.deepcopy(teacher)
    encoder: Any = student.base_model.encoder
    encoder.layer = nn.ModuleList([encoder.layer[i] for i in keep])
    student.config.num_hidden_layers = student_layers
    for new_idx, layer in enumerate(encoder.layer):
        # transformers 5 layers carry their index for cache bookkeeping; keep it consistent after the cut.
        attn = getattr(getattr(layer, "attention", None), "self", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_idx
    return student


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``alpha * T² * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels)`` (Hinton et al., 2015).

    The T² factor keeps the soft-target gradients on the same scale as the hard-label ones.
    """
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.softmax(teacher_logits / temperature, dim=-1),
        reduction="batchmean",
    ) * (temperature**2)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard


def distill(
    student: PreTrainedModel,
    soft_targets: np.ndarray,
    train: list[Example],
    validation: list[Example],
    tok: Tokenizer,
    cfg: EdgeStudentConfig,
    max_len: int,
    seed: int,
    bf16: bool = False,
) -> float:
    """Train ``student`` on the teacher's logits for ``train`` (``soft_targets``, same order) and the labels.

    Returns:
        Validation accuracy.
    """
    torch.manual_seed(seed)
    targets = torch.from_numpy(soft_targets)

    def kd_loss(logits: torch.Tensor, labels: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        return distillation_loss(logits, targets[idx], labels, cfg.temperature, cfg.alpha)

    fit(
        student,
        train,
        tok,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        freeze_layers=cfg.freeze_layers,
        max_len=max_len,
        rng=np.random.default_rng(seed + 1),
        loss_fn=kd_loss,
        desc="student",
        bf16=bf16,
    )
    return accuracy(student, validation, tok, max_len)
