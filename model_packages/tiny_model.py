"""Build a tiny, random-weight causal LM and a locally trained tokenizer, fully offline.

This is the smoke-test model: tests, CI and a fresh `make local-up` use it because no model hub is reachable.
It is deterministic (fixed seed) and clearly named so nobody mistakes its output for a real model's.

    python -m model_packages.tiny_model OUT_DIR [--arch gpt2|llama]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from config.atomic import atomic_dir

TINY_MODEL_NAME = "tiny-smoke-test-gpt2"
SEED = 1234
VOCAB_SIZE = 512
# A small bilingual corpus so the BPE tokenizer has merges for the words tests and demos use.
CORPUS = [
    "Hello, how are you? I am fine, thank you.",
    "The quick brown fox jumps over the lazy dog.",
    "Deploy the model to SageMaker and serve it locally with vLLM, SGLang or Ollama.",
    "What is my account balance? Please transfer money to my savings account.",
    "Explain quantum computing in simple terms.",
    "Write a Python function that sorts a list.",
    "你好，请问今天的天气怎么样？",
    "写一首关于秋天的诗。我的银行卡丢了怎么办？",
    'The answer is 42. JSON: {"name": "Zhang San", "age": 28}',
] * 20
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _train_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=1024,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)


def _build_model(out: Path, arch: str, vocab_size: int, eos_id: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PretrainedConfig

    torch.manual_seed(SEED)
    config: PretrainedConfig
    if arch == "gpt2":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=1024,
            n_embd=64,
            n_layer=2,
            n_head=4,
            bos_token_id=eos_id,
            eos_token_id=eos_id,
        )
    elif arch == "llama":
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            bos_token_id=eos_id,
            eos_token_id=eos_id,
        )
    else:
        raise ValueError(f"arch: {arch!r} is not supported; allowed: gpt2, llama")
    model = AutoModelForCausalLM.from_config(config)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)


def build_tiny_model(out_dir: str | os.PathLike[str], arch: str = "gpt2", force: bool = False) -> Path:
    """Write a tiny model + tokenizer to ``out_dir`` (atomically) and return the path.

    Args:
        out_dir: target directory; left alone if it already holds a complete model and ``force`` is false.
        arch: ``gpt2`` (default) or ``llama``.
        force: rebuild even when present.
    Raises:
        ValueError: unsupported ``arch``.
    """
    out = Path(out_dir)
    marker = out / "SMOKE_TEST_MODEL.json"
    if marker.is_file() and not force:
        return out
    with atomic_dir(out) as tmp:
        _train_tokenizer(tmp)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tmp)
        _build_model(tmp, arch, len(tok), tok.eos_token_id)
        (tmp / "SMOKE_TEST_MODEL.json").write_text(
            json.dumps(
                {
                    "name": TINY_MODEL_NAME if arch == "gpt2" else "tiny-smoke-test-llama",
                    "warning": "random weights, for smoke tests only: output is gibberish by design",
                    "seed": SEED,
                    "arch": arch,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("out_dir")
    ap.add_argument("--arch", choices=["gpt2", "llama"], default="gpt2")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    path = build_tiny_model(args.out_dir, args.arch, args.force)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
