"""The teacher: fine-tune a hub BERT (``edge.teacher.hub_id``) or, offline, train a small BERT built from a config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from tqdm.auto import tqdm
from transformers import BertConfig, BertForSequenceClassification, PreTrainedModel

from config.edge_section import EdgeTeacherConfig
from edge.dataset import Example
from edge.errors import EdgeInputError
from edge.tokenizer import encode

#: Sentences in the shipped set are short; training pads per batch and truncates here (export uses max_seq_len).
TRAIN_MAX_LEN = 64


class LogitsModel(nn.Module):
    """``(input_ids, attention_mask) -> logits``: the one signature every export and runner uses."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return the classification logits ``[batch, num_labels]``."""
        logits: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits


def build_teacher(cfg: EdgeTeacherConfig, vocab_size: int, num_labels: int, max_positions: int, seed: int) -> nn.Module:
    """A fresh BERT classifier: the hub checkpoint with a new head, or a small BERT from ``cfg`` with a fixed seed.

    Raises:
        EdgeInputError: the hub checkpoint's label count differs from the configured labels.
    """
    torch.manual_seed(seed)
    if cfg.hub_id is not None:
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(cfg.hub_id, num_labels=num_labels)
        if model.config.num_labels != num_labels:
            raise EdgeInputError(
                f"edge.data.labels: {num_labels} labels but {cfg.hub_id} has {model.config.num_labels} outputs"
            )
        return model
    bert = BertConfig(  # type: ignore[call-arg]  # num_labels goes through PretrainedConfig's **kwargs
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=max_positions,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(bert)


def batches(
    examples: list[Example], tok: Tokenizer, batch_size: int, rng: np.random.Generator | None
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Tokenized ``(ids, mask, labels)`` batches, shuffled by ``rng`` when given."""
    order = rng.permutation(len(examples)) if rng is not None else np.arange(len(examples))
    out = []
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start : start + batch_size]]
        ids, mask = encode(tok, [e.text for e in chunk], TRAIN_MAX_LEN)
        out.append((torch.from_numpy(ids), torch.from_numpy(mask), torch.tensor([e.label for e in chunk])))
    return out


#: Share of the steps spent ramping the learning rate up: post-LayerNorm BERT trained from scratch stalls without it.
WARMUP_FRACTION = 0.1


def warmup_then_linear_decay(total_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over the first WARMUP_FRACTION of ``total_steps``, then linear decay to 0."""
    warmup = max(1, int(total_steps * WARMUP_FRACTION))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


@torch.inference_mode()
def accuracy(model: nn.Module, examples: list[Example], tok: Tokenizer, batch_size: int = 64) -> float:
    """Share of ``examples`` the model classifies correctly (0..1)."""
    model.eval()
    hits = 0
    for ids, mask, labels in batches(examples, tok, batch_size, None):
        hits += int((model(input_ids=ids, attention_mask=mask).logits.argmax(-1) == labels).sum())
    return hits / max(1, len(examples))


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def fit(
    model: nn.Module,
    train: list[Example],
    tok: Tokenizer,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    rng: np.random.Generator,
    loss_fn: LossFn,
    desc: str,
) -> None:
    """The training loop teacher and student share: AdamW, warm-up then linear decay, ``loss_fn(ids, mask, labels)``."""
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    steps = epochs * -(-len(train) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_then_linear_decay(steps))
    bar = tqdm(total=steps, desc=desc, unit="step")
    for _ in range(epochs):
        model.train()
        for ids, mask, labels in batches(train, tok, batch_size, rng):
            loss = loss_fn(ids, mask, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()


def train_teacher(
    model: nn.Module,
    train: list[Example],
    validation: list[Example],
    tok: Tokenizer,
    cfg: EdgeTeacherConfig,
    seed: int,
) -> float:
    """Fine-tune with cross-entropy and AdamW (linear decay); return validation accuracy."""
    torch.manual_seed(seed)

    def cross_entropy(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        return loss

    fit(
        model,
        train,
        tok,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        rng=np.random.default_rng(seed),
        loss_fn=cross_entropy,
        desc="teacher",
    )
    return accuracy(model, validation, tok)


def save_model(model: nn.Module, out: Path) -> None:
    """Save a Hugging Face model (safetensors + config) into ``out``."""
    assert isinstance(model, PreTrainedModel)
    model.save_pretrained(str(out))


def load_model(dir_: Path, attn_implementation: str | None = None) -> PreTrainedModel:
    """Load a saved classifier in eval mode (``attn_implementation="eager"`` for converters that need it)."""
    from transformers import AutoModelForSequenceClassification

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(str(dir_), **kwargs)
    return model.eval()


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
