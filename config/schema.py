"""The deployment config: one typed model for all four modes (cloud, local, hybrid, edge).

Sections for the cloud path live here; ``local``, ``router`` and ``edge`` have a module each.
Every cross-field rule raises with the dotted field path first, so the loader can print it as is.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from config.base import Section
from config.edge_section import EdgeConfig
from config.instances import InstanceType, instance_table
from config.local_section import LocalConfig
from config.network_section import NetworkConfig, private_path_problems
from config.router_section import RouterConfig
from config.sizing import (
    GIB,
    GPU_MEMORY_UTILIZATION,
    Architecture,
    Footprint,
    Placement,
    fits,
    suggest_instances,
    suggest_precisions,
    usable_gib,
)
from local.embedded.limits import BY_NAME as RUNTIME_BY_NAME
from local.embedded.memory import core_kv_tokens

Dtype = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4"]
Quantization = Literal["none", "awq", "gptq", "bnb-4bit", "bnb-8bit", "fp8"]
Engine = Literal["handler", "lmi"]
# The serving images, pinned here and nowhere else; synth resolves the account per region offline (CDK region facts).
#   handler: the PyTorch inference DLC that runs code/inference.py through the SageMaker inference toolkit
#            (https://github.com/aws/deep-learning-containers/blob/master/available_images.md).
#   lmi:     Large Model Inference V18 = DJL serving 0.36.0 with vLLM 0.12.0, released 2025-12-15
#            (https://github.com/deepjavalibrary/djl-serving/blob/master/serving/docs/lmi/release_notes.md).
ENGINE_IMAGES: dict[str, tuple[str, str]] = {
    "handler": ("pytorch-inference", "2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker"),
    "lmi": ("djl-inference", "0.36.0-lmi18.0.0-cu128"),
}
# model.dtype -> the handler's DTYPE and vLLM's --dtype (only these three: quantization is model.quantization).
TORCH_DTYPES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# model.quantization -> LMI's OPTION_QUANTIZE for schemes vLLM applies at load time. AWQ/GPTQ checkpoints are
# pre-quantized: vLLM reads the scheme from the checkpoint's config, and LMI's guide says not to set it then
# (setting it limits the kernels vLLM may pick).
LMI_RUNTIME_QUANTIZE: dict[str, str] = {"fp8": "fp8", "bnb-4bit": "bitsandbytes"}
# The handler's generation core loads bitsandbytes NF4 weights itself (LOAD_IN_4BIT); nothing else quantized.
HANDLER_QUANTIZATIONS = ("none", "bnb-4bit")
# SageMaker's ML storage volume (VolumeSizeInGB) bounds, for instance types without local NVMe.
MIN_VOLUME_GB = 30
MAX_VOLUME_GB = 512
# Scale out when a copy's running batch is this full, so new requests still find a free batch slot.
CONCURRENCY_TARGET_FILL = 0.75
NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$"
SCHEDULE_RE = re.compile(
    r"^(cron\(([^ ]+ ){5}[^ ]+\)|at\(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\))$"
)
ACCOUNT_RE = r"^\d{12}$"
REGION_RE = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"

PositiveInt = Annotated[int, Field(gt=0)]


class AwsSection(Section):
    """Where to deploy. Leave both unset for an environment-agnostic template (synth needs no credentials)."""

    account: str | None = Field(default=None, pattern=ACCOUNT_RE, description="12-digit AWS account id")
    region: str | None = Field(default=None, pattern=REGION_RE, description="AWS region, e.g. us-east-1")


class ArchitectureSection(Section):
    """The model's shapes (its ``config.json``), for an exact memory check; without it the check estimates a
    Llama-2-like shape from ``params_billions`` (full multi-head attention: more KV cache than a GQA model needs)."""

    layers: int = Field(gt=0, le=1000, description="num_hidden_layers")
    hidden: int = Field(gt=0, le=131_072, description="hidden_size")
    intermediate: int = Field(gt=0, le=1_048_576, description="intermediate_size (MLP width)")
    heads: int = Field(gt=0, le=1024, description="num_attention_heads")
    kv_heads: int | None = Field(default=None, gt=0, le=1024, description="num_key_value_heads (default: heads)")
    vocab: int = Field(gt=0, le=4_000_000, description="vocab_size")
    tied_embeddings: bool = Field(default=False, description="tie_word_embeddings")
    gated_mlp: bool = Field(default=True, description="gate/up/down MLP (Llama, Qwen, Mistral); false for GPT-2 style")

    @model_validator(mode="after")
    def _heads_divide(self) -> ArchitectureSection:
        if self.hidden % self.heads:
            raise ValueError(f"heads: {self.heads} does not divide hidden {self.hidden}")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"kv_heads: {self.kv_heads} does not divide heads {self.heads}")
        return self

    def resolve(self) -> Architecture:
        return Architecture(
            layers=self.layers,
            hidden=self.hidden,
            intermediate=self.intermediate,
            heads=self.heads,
            kv_heads=self.kv_heads or self.heads,
            vocab=self.vocab,
            tied_embeddings=self.tied_embeddings,
            gated_mlp=self.gated_mlp,
        )


class ModelSection(Section):
    """The model to serve and how its weights are stored."""

    name: str = Field(pattern=NAME_RE, description="short name used in resource names and S3 keys")
    hub_id: str | None = Field(default=None, description="Hugging Face model id, for users with hub access")
    artifact_key: str | None = Field(
        default=None,
        description="S3 key of model.tar.gz in the artifact bucket (written by `make upload`), or a prefix ending "
        "in '/' that holds the uncompressed weights; default models/<name>/model.tar.gz",
    )
    params_billions: float = Field(gt=0, le=2000, description="parameter count in billions")
    dtype: Dtype = "bf16"
    quantization: Quantization = "none"
    architecture: ArchitectureSection | None = None

    @property
    def shape(self) -> Architecture:
        """The architecture for sizing: the configured one, else an estimate from the parameter count."""
        return self.architecture.resolve() if self.architecture else Architecture.llama_like(self.params_billions)

    @field_validator("artifact_key")
    @classmethod
    def _key_shape(cls, v: str | None) -> str | None:
        if v is not None and (
            v.startswith("/") or v.startswith("s3://") or not (v.endswith(".tar.gz") or v.endswith("/"))
        ):
            raise ValueError(
                "must be a key inside the artifact bucket ending in .tar.gz (e.g. models/gpt2/<sha>/model.tar.gz) "
                "or a prefix of uncompressed weights ending in '/' (e.g. models/llama/<sha>/)"
            )
        return v

    @property
    def uncompressed(self) -> bool:
        """True when ``s3_key`` is a prefix of uncompressed weights, not a model.tar.gz."""
        return self.s3_key.endswith("/")

    @property
    def s3_key(self) -> str:
        return self.artifact_key or f"models/{self.name}/model.tar.gz"

    @property
    def s3_prefix(self) -> str:
        """The only prefix the endpoint role may read."""
        return f"models/{self.name}/"


class ImageSection(Section):
    """Container image: a full URI, or an AWS Deep Learning Container repository + tag resolved per region offline."""

    uri: str | None = Field(default=None, description="full image URI; overrides repository/tag")
    # The PyTorch inference DLC runs code/inference.py through the SageMaker inference toolkit and installs
    # code/requirements.txt at start-up; with network isolation, build the package with WHEELS= (docs/PACKAGING.md).
    repository: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._/-]{0,255}$",
        description="DLC repository in the region's DLC account; default by engine: pytorch-inference (handler), "
        "djl-inference (lmi)",
    )
    tag: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$",
        description="image tag; default by engine, pinned in config/schema.py ENGINE_IMAGES",
    )

    @field_validator("uri")
    @classmethod
    def _uri_shape(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^:@]+[:@].+$", v):
            raise ValueError("must be an ECR image URI <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>")
        return v


class ConcurrencyScaling(Section):
    """Second policy on the 10-second concurrency metric, which reacts faster for LLM traffic (on by default for lmi)."""

    enabled: bool | None = Field(default=None, description="default: on for engine lmi, off for handler")
    target_concurrent_requests: float | None = Field(
        default=None,
        gt=0,
        description="per instance; default for lmi: 75% of the running batch slots (runtime.max_batch_size x model "
        "copies), for handler 8",
    )


def _from_table(name: str, description: str) -> Any:
    """A field whose default and bounds are the handler's own (``local/embedded/limits.py`` RUNTIME_ENV)."""
    var = RUNTIME_BY_NAME[name]
    if var.kind == "int":
        return Field(default=var.default, ge=var.lo, le=var.hi, description=f"{description} ({name})")
    return Field(default=var.default, description=f"{description} ({name})")


class RuntimeSection(Section):
    """Request limits of the serving container, written into its environment by synth (both engines)."""

    max_input_tokens: int = _from_table("MAX_INPUT_TOKENS", "longest prompt, in tokens")
    max_new_tokens: int = _from_table("MAX_NEW_TOKENS", "cap on generated tokens per request")
    default_max_new_tokens: int = _from_table("DEFAULT_MAX_NEW_TOKENS", "handler: tokens when a request names none")
    max_batch_size: int = _from_table(
        "MAX_BATCH_SIZE", "sequences generated together: the handler's KV-cache slots, LMI's max rolling batch size"
    )
    truncate_input: bool = _from_table(
        "TRUNCATE_INPUT", "handler: keep the last max_input_tokens of a longer prompt (false: answer 413)"
    )
    compile: Literal["auto", "on", "off"] = _from_table("COMPILE", "handler: torch.compile + CUDA graphs for decode")
    model_server_workers: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="handler: TorchServe workers (SAGEMAKER_MODEL_SERVER_WORKERS); default the toolkit's, one per "
        "GPU; with engine_mode shared, the requests in flight per instance",
    )
    engine_mode: Literal["local", "shared"] = _from_table(
        "ENGINE_MODE", "handler: shared = one engine per GPU for all toolkit workers"
    )
    engine_connect_timeout_s: int = _from_table(
        "ENGINE_CONNECT_TIMEOUT_S", "handler, shared mode: wait for the engine socket"
    )
    engine_start_timeout_s: int = _from_table(
        "ENGINE_START_TIMEOUT_S", "handler, shared mode: wait for the owner worker to load the model"
    )

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("batch_window_ms", "batch_max_wait_ms"):
                if key in data:
                    raise ValueError(
                        f"{key}: retired; the handler's generation core batches continuously (no batch window)"
                    )
        return data

    @model_validator(mode="after")
    def _default_within_cap(self) -> RuntimeSection:
        if self.default_max_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"default_max_new_tokens: {self.default_max_new_tokens} > max_new_tokens {self.max_new_tokens}"
            )
        return self


HANDLER_ONLY_RUNTIME = (
    "default_max_new_tokens",
    "truncate_input",
    "compile",
    "model_server_workers",
    "engine_mode",
    "engine_connect_timeout_s",
    "engine_start_timeout_s",
)
# vLLM engine arguments synth writes from typed fields; endpoint.lmi.options may not set them a second time.
LMI_GENERATED_OPTIONS = frozenset(
    {
        "model_id",
        "rolling_batch",
        "async_mode",
        "entrypoint",
        "tensor_parallel_degree",
        "tensor_parallel_size",
        "max_model_len",
        "dtype",
        "quantize",
        "quantization",
        "gpu_memory_utilization",
        "max_rolling_batch_size",
        "max_num_seqs",
    }
)


class LmiSection(Section):
    """vLLM on the Large Model Inference (DJL serving) container; only with endpoint.engine lmi."""

    mode: Literal["rolling_batch", "async"] = Field(
        default="rolling_batch",
        description="rolling_batch: OPTION_ROLLING_BATCH=vllm; async: LMI's async vLLM service (AWS's recommended "
        "handler since LMI V16)",
    )
    model_source: Literal["s3", "hub"] = Field(
        default="s3",
        description="s3: SageMaker copies model.artifact_key to /opt/ml/model; hub: the container downloads "
        "model.hub_id (needs network, so vpc.network_isolation false)",
    )
    tensor_parallel_degree: int | None = Field(
        default=None, ge=1, le=64, description="GPUs one model copy is sharded over; default all the instance's GPUs"
    )
    max_model_len: int | None = Field(
        default=None,
        ge=16,
        le=1_048_576,
        description="context length vLLM reserves KV cache for; default runtime.max_input_tokens + max_new_tokens",
    )
    gpu_memory_utilization: float = Field(
        default=0.9, ge=0.5, le=0.98, description="share of each GPU vLLM may use (weights + KV cache)"
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="more vLLM engine arguments, passed as OPTION_<NAME> (LMI's pass-through), e.g. "
        "enable_prefix_caching: 'true'; names synth writes from typed fields are rejected",
    )

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", key):
                raise ValueError(
                    f"{key!r}: use the vLLM engine argument name in snake_case, e.g. enable_prefix_caching"
                )
            if key in LMI_GENERATED_OPTIONS:
                raise ValueError(
                    f"{key!r} is generated from typed fields (endpoint.lmi.*, endpoint.runtime.*, model.*); set it there"
                )
        return v


class ScheduledWindow(Section):
    """Raise the minimum before a known spike (e.g. a promotion) and restore it after."""

    name: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    start: str = Field(description="cron(...) / at(...) expression, e.g. cron(0 8 11 11 ? *)")
    end: str = Field(description="cron(...) / at(...) expression when the normal minimum returns")
    timezone: str = "UTC"
    min_instances: PositiveInt

    @field_validator("start", "end")
    @classmethod
    def _schedule(cls, v: str) -> str:
        if not SCHEDULE_RE.match(v):
            raise ValueError(
                "must be an Application Auto Scaling schedule: cron(m h dom mon dow yr), at(yyyy-mm-ddThh:mm:ss) or rate(N unit)"
            )
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Asia/Shanghai or UTC") from None
        return v


class DataCapture(Section):
    enabled: bool = False
    sampling_percent: int = Field(default=20, ge=1, le=100)
    capture_input: bool = True
    capture_output: bool = True


class VpcSection(Section):
    """Run the endpoint inside a VPC: create an isolated one, or name an existing one (no lookups at synth)."""

    mode: Literal["none", "create", "existing"] = "none"
    cidr: str = Field(default="10.20.0.0/16", pattern=r"^\d+\.\d+\.\d+\.\d+/\d+$")
    vpc_id: str | None = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$")
    subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(default_factory=list)
    availability_zones: list[str] = Field(default_factory=list)
    network_isolation: bool = Field(default=True, description="container gets no outbound network at all")

    @model_validator(mode="after")
    def _existing_needs_ids(self) -> VpcSection:
        if self.mode == "existing":
            if not self.vpc_id:
                raise ValueError("vpc_id: required when mode is 'existing'")
            if len(self.subnet_ids) < 2:
                raise ValueError(
                    "subnet_ids: give at least 2 private subnets (in different AZs) when mode is 'existing'"
                )
            if len(self.availability_zones) != len(self.subnet_ids):
                raise ValueError("availability_zones: give one AZ per subnet id when mode is 'existing'")
        return self


class AlarmSection(Section):
    email: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = Field(default_factory=list)
    p99_model_latency_ms: float = Field(default=5000, gt=0)
    errors_5xx_per_5min: int = Field(default=5, ge=1)
    at_max_capacity_minutes: int = Field(default=15, ge=1, le=1440)


class EndpointSection(Section):
    """The SageMaker real-time endpoint and its autoscaling."""

    enabled: bool = True
    name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9](-*[a-z0-9]){0,62}$",
        description="endpoint name (clients call it by name); default llm-<environment>-<model.name>",
    )
    instance_type: str = "ml.g5.2xlarge"
    variant_name: str = Field(default="AllTraffic", pattern=r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")
    min_instances: PositiveInt = 2
    max_instances: PositiveInt = 10
    target_qps_per_instance: float = Field(default=50, gt=0, le=10000)
    scale_out_cooldown_s: int = Field(default=60, ge=0, le=3600)
    scale_in_cooldown_s: int = Field(default=600, ge=0, le=86400)
    concurrency_scaling: ConcurrencyScaling = ConcurrencyScaling()
    scheduled_scaling: list[ScheduledWindow] = Field(default_factory=list)
    engine: Engine = Field(
        default="handler",
        description="handler: our inference.py on the PyTorch DLC; lmi: vLLM on the Large Model Inference container "
        "(docs/CLOUD.md)",
    )
    image: ImageSection = ImageSection()
    runtime: RuntimeSection = RuntimeSection()
    lmi: LmiSection = LmiSection()
    health_check_timeout_s: int | None = Field(
        default=None,
        ge=60,
        le=3600,
        description="seconds SageMaker waits for /ping after start; default 600 (handler) or, for lmi, 600 + 15 s per "
        "GiB of weights (vLLM loads them, profiles memory and captures CUDA graphs before answering)",
    )
    model_download_timeout_s: int | None = Field(
        default=None, ge=60, le=3600, description="default 600 + 10 s per GiB of weights, at most 3600"
    )
    data_capture: DataCapture = DataCapture()
    vpc: VpcSection = VpcSection()
    alarms: AlarmSection = AlarmSection()

    @model_validator(mode="before")
    @classmethod
    def _no_free_form_environment(cls, data: Any) -> Any:
        if isinstance(data, dict) and "environment" in data:
            raise ValueError(
                "environment: removed; the container environment is generated from typed fields: "
                "endpoint.runtime.* (limits), model.dtype, endpoint.lmi.* and endpoint.lmi.options (vLLM arguments)"
            )
        return data

    @field_validator("instance_type")
    @classmethod
    def _instance(cls, v: str) -> str:
        if not v.startswith("ml."):
            raise ValueError(f"{v!r} is not a SageMaker instance type: expected ml.* (e.g. ml.g5.2xlarge)")
        if instance_table().get(v) is None:
            known = ", ".join(sorted(instance_table().instances))
            raise ValueError(
                f"{v!r} is not in config/instances.yaml; known: {known} (add a row with its facts to use it)"
            )
        return v

    @model_validator(mode="after")
    def _bounds(self) -> EndpointSection:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances: {self.min_instances} > max_instances {self.max_instances}; need min <= max"
            )
        for i, w in enumerate(self.scheduled_scaling):
            if w.min_instances > self.max_instances:
                raise ValueError(
                    f"scheduled_scaling.{i}.min_instances: {w.min_instances} > max_instances {self.max_instances}"
                )
        return self

    @model_validator(mode="after")
    def _engine_fields(self) -> EndpointSection:
        if self.engine == "handler":
            if self.lmi.model_fields_set:
                raise ValueError("lmi: only used with engine 'lmi' (engine is 'handler'); remove it or set engine: lmi")
            return self
        stray = sorted(set(HANDLER_ONLY_RUNTIME) & self.runtime.model_fields_set)
        if stray:
            raise ValueError(
                f"runtime.{stray[0]}: only read by the handler engine; LMI (vLLM) has no such setting, remove it"
            )
        inst = instance_table().instances[self.instance_type]
        if not inst.gpus:
            raise ValueError(f"instance_type: engine 'lmi' (vLLM on GPUs) needs a GPU instance; {inst.name} has none")
        tp = self.lmi.tensor_parallel_degree
        if tp is not None and (tp > inst.gpus or inst.gpus % tp):
            raise ValueError(
                f"lmi.tensor_parallel_degree: {tp} does not divide {inst.name}'s {inst.gpus} GPUs; "
                f"allowed: {', '.join(str(d) for d in range(1, inst.gpus + 1) if inst.gpus % d == 0)}"
            )
        if self.lmi.max_model_len is not None and self.lmi.max_model_len < self.runtime.max_input_tokens + 1:
            raise ValueError(
                f"lmi.max_model_len: {self.lmi.max_model_len} leaves no room to generate after a "
                f"runtime.max_input_tokens {self.runtime.max_input_tokens} prompt"
            )
        return self

    @property
    def target_invocations_per_instance_per_minute(self) -> float:
        """SageMakerVariantInvocationsPerInstance is a per-minute sum: QPS x 60."""
        return self.target_qps_per_instance * 60

    @property
    def image_repository(self) -> str:
        return self.image.repository or ENGINE_IMAGES[self.engine][0]

    @property
    def image_tag(self) -> str:
        return self.image.tag or ENGINE_IMAGES[self.engine][1]

    @property
    def instance(self) -> InstanceType:
        return instance_table().instances[self.instance_type]

    @property
    def tensor_parallel_degree(self) -> int:
        """GPUs one model copy uses: 1 for the handler (one copy per GPU), lmi's degree or all GPUs for lmi."""
        if self.engine == "handler":
            return 1
        return self.lmi.tensor_parallel_degree or self.instance.gpus

    @property
    def model_copies(self) -> int:
        """Model copies per instance: one per GPU for the handler; GPUs / tensor parallel degree for LMI."""
        return max(1, self.instance.gpus // self.tensor_parallel_degree)

    @property
    def placement(self) -> Placement:
        """How one model copy sits on the instance, for the sizing check."""
        util = self.lmi.gpu_memory_utilization if self.engine == "lmi" else GPU_MEMORY_UTILIZATION
        return Placement(gpus=self.tensor_parallel_degree if self.instance.gpus else 0, utilization=util)

    def startup_health_check_s(self, weights: float) -> int:
        """Health-check timeout: the configured one, else a default that grows with the weights (GiB) for lmi."""
        if self.health_check_timeout_s is not None:
            return self.health_check_timeout_s
        return 600 if self.engine == "handler" else min(3600, 600 + int(15 * weights))

    def download_timeout_s(self, weights: float) -> int:
        """Model download timeout: the configured one, else 600 s + 10 s per GiB of weights (at most 3600)."""
        if self.model_download_timeout_s is not None:
            return self.model_download_timeout_s
        return min(3600, 600 + int(10 * weights))

    @property
    def max_model_len(self) -> int:
        return self.lmi.max_model_len or self.runtime.max_input_tokens + self.runtime.max_new_tokens

    @property
    def kv_tokens(self) -> int:
        """KV-cache tokens one model copy holds: the handler's core allocates every batch slot's full context up
        front; vLLM must fit at least one ``max_model_len`` sequence (it fills the rest of its memory share)."""
        if self.engine == "handler":
            return core_kv_tokens(
                self.runtime.max_batch_size, self.runtime.max_input_tokens + self.runtime.max_new_tokens
            )
        return self.max_model_len

    @property
    def concurrency_enabled(self) -> bool:
        enabled = self.concurrency_scaling.enabled
        return self.engine == "lmi" if enabled is None else enabled

    @property
    def concurrency_target(self) -> float:
        """Target of SageMakerVariantConcurrentRequestsPerModelHighResolution (requests in flight per instance)."""
        if self.concurrency_scaling.target_concurrent_requests is not None:
            return self.concurrency_scaling.target_concurrent_requests
        if self.engine == "handler":
            return 8
        slots = self.runtime.max_batch_size * self.model_copies
        return float(max(1, int(slots * CONCURRENCY_TARGET_FILL)))


class StorageSection(Section):
    noncurrent_version_days: int = Field(default=30, ge=1, le=3650)
    access_log_days: int = Field(default=365, ge=1, le=3650)


class DeploymentConfig(Section):
    """The whole deployment, as read from ``config/<env>.yaml``."""

    environment: str = Field(pattern=NAME_RE)
    aws: AwsSection = AwsSection()
    tags: dict[str, str] = Field(default_factory=dict)
    model: ModelSection
    storage: StorageSection = StorageSection()
    endpoint: EndpointSection = EndpointSection()
    local: LocalConfig = LocalConfig()
    router: RouterConfig = RouterConfig()
    edge: EdgeConfig = EdgeConfig()
    network: NetworkConfig = NetworkConfig()

    @property
    def endpoint_name(self) -> str:
        return self.endpoint.name or f"llm-{self.environment}-{self.model.name}"[:63].rstrip("-")

    @property
    def weights_gib(self) -> float:
        return self.footprint.weights_gib

    @property
    def footprint(self) -> Footprint:
        """Memory one model copy needs on the endpoint (weights + KV cache + runtime overhead)."""
        m = self.model
        return Footprint(m.shape, m.dtype, m.quantization, self.endpoint.kv_tokens)

    @property
    def health_check_timeout_s(self) -> int:
        return self.endpoint.startup_health_check_s(self.weights_gib)

    @property
    def model_download_timeout_s(self) -> int:
        return self.endpoint.download_timeout_s(self.weights_gib)

    @property
    def volume_size_gb(self) -> int | None:
        """The ML storage volume for instances without local NVMe: room for the model twice (a model.tar.gz and
        its unpacked copy) plus 10 GB for the container's scratch space; None where SageMaker uses instance storage
        (it rejects VolumeSizeInGB there)."""
        if self.endpoint.instance.nvme:
            return None
        return max(MIN_VOLUME_GB, math.ceil(2 * self.weights_gib * GIB / 1e9) + 10)

    @model_validator(mode="after")
    def _private_path(self) -> DeploymentConfig:
        r = self.router
        problems = private_path_problems(
            self.environment, self.network, r.local_url, r.enabled and self.endpoint.enabled, r.vpc.enabled
        )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _engine_and_model(self) -> DeploymentConfig:
        if not self.endpoint.enabled:
            return self
        ep, m = self.endpoint, self.model
        if ep.engine == "handler":
            if m.quantization not in HANDLER_QUANTIZATIONS or m.dtype not in TORCH_DTYPES:
                precision = m.quantization if m.quantization != "none" else m.dtype
                raise ValueError(
                    f"model.{'quantization' if m.quantization != 'none' else 'dtype'}: the handler engine loads "
                    f"weights at {'/'.join(TORCH_DTYPES)} (or bnb-4bit on a GPU); {precision} needs "
                    "endpoint.engine: lmi (vLLM)"
                )
            if m.quantization == "bnb-4bit" and not ep.instance.gpus:
                raise ValueError("model.quantization: bnb-4bit (LOAD_IN_4BIT) needs a GPU instance")
        else:
            if m.dtype not in TORCH_DTYPES:
                raise ValueError(
                    f"model.dtype: {m.dtype} is a quantized precision; set model.quantization (awq, gptq, fp8, "
                    f"bnb-4bit) and keep model.dtype one of {'/'.join(TORCH_DTYPES)} for the unquantized layers"
                )
            if m.quantization == "bnb-8bit":
                raise ValueError("model.quantization: bnb-8bit is not served by vLLM in LMI; use bnb-4bit, fp8, awq")
            if ep.lmi.model_source == "hub":
                if not m.hub_id:
                    raise ValueError("model.hub_id: required when endpoint.lmi.model_source is 'hub'")
                if ep.vpc.network_isolation:
                    raise ValueError(
                        "endpoint.lmi.model_source: 'hub' makes the container download the weights, which network "
                        "isolation forbids; upload them (model_source s3) or set endpoint.vpc.network_isolation false"
                    )
        if m.dtype == "bf16" and ep.instance.gpus and not ep.instance.bf16:
            raise ValueError(
                f"model.dtype: bf16 needs an Ampere or newer GPU; {ep.instance_type} has {ep.instance.gpu}; use fp16"
            )
        if self.volume_size_gb is not None and self.volume_size_gb > MAX_VOLUME_GB:
            raise ValueError(
                f"endpoint.instance_type: {ep.instance_type} has no local NVMe and the model needs a "
                f"{self.volume_size_gb} GB volume, over SageMaker's {MAX_VOLUME_GB} GB; use an instance with NVMe"
            )
        return self._model_fits_instance()

    def _model_fits_instance(self) -> DeploymentConfig:
        table = instance_table()
        ep, m = self.endpoint, self.model
        inst, placement = ep.instance, ep.placement
        need = self.footprint
        if fits(inst, need, placement):
            return self
        precision = m.quantization if m.quantization != "none" else m.dtype
        handler = ep.engine == "handler"
        options = [f"instance_type {n}" for n in suggest_instances(table, inst, need.total_gib, per_gpu=handler)]
        all_gpus = Placement(inst.gpus, placement.utilization)
        if not handler and placement.gpus < inst.gpus and fits(inst, need, all_gpus):
            options.insert(0, f"lmi.tensor_parallel_degree {inst.gpus} (or unset: all GPUs)")
        # as lmi the copy would hold one max_model_len sequence of KV cache up front (vLLM pages the rest)
        as_lmi = Footprint(need.arch, need.dtype, need.quantization, ep.max_model_len)
        if handler and inst.gpus > 1 and fits(inst, as_lmi):
            options.insert(0, f"engine lmi (tensor parallel over all {inst.gpus} GPUs)")
        elif handler:
            multi = suggest_instances(table, inst, as_lmi.total_gib, per_gpu=False, limit=1)
            if multi and multi[0] not in [o.removeprefix("instance_type ") for o in options]:
                options.append(f"engine lmi with instance_type {multi[0]} (tensor parallel)")
        if handler and need.kv_gib > need.weights_gib / 4:
            options.append(
                f"a smaller KV cache ((runtime.max_batch_size + 1 scratch row) x (max_input_tokens + max_new_tokens) = "
                f"{need.kv_tokens} "
                "tokens now)"
            )
        if not handler:
            options += suggest_precisions(inst, need, placement)
        else:
            options += [f"engine lmi with {o}" for o in suggest_precisions(inst, as_lmi, placement)]
        hint = "; try " + " or ".join(options) if options else ""
        if handler and inst.gpus > 1:
            why = "the handler engine loads one whole copy per GPU"
        elif not handler and inst.gpus:
            why = (
                f"tensor parallel degree {placement.gpus} uses {placement.gpus} GPU{'s' if placement.gpus > 1 else ''}"
            )
        else:
            why = ""
        tp_short = not handler and placement.gpus < inst.gpus
        field = "endpoint.lmi.tensor_parallel_degree" if tp_short else "endpoint.instance_type"
        raise ValueError(
            f"{field}: a {m.params_billions:g}B model at {precision} needs ~{need.total_gib:.1f} GiB "
            f"({need.describe()}) but {inst.name} has {placement.describe(inst)} "
            f"({usable_gib(inst, placement):.1f} GiB usable{'; ' + why if why else ''}){hint}"
        )
