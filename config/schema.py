"""The deployment config: one typed model for all four modes (cloud, local, hybrid, edge).

Sections for the cloud path live here; ``local``, ``router`` and ``edge`` have a module each.
Every cross-field rule raises with the dotted field path first, so the loader can print it as is.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from config.base import Section
from config.edge_section import EdgeConfig
from config.instances import instance_table
from config.local_section import LocalConfig
from config.network_section import NetworkConfig, private_path_problems
from config.router_section import RouterConfig
from config.sizing import fits, required_gib, suggest_instances, suggest_precisions, usable_gib

Dtype = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4"]
Quantization = Literal["none", "awq", "gptq", "bnb-4bit", "bnb-8bit", "fp8"]
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


class ModelSection(Section):
    """The model to serve and how its weights are stored."""

    name: str = Field(pattern=NAME_RE, description="short name used in resource names and S3 keys")
    hub_id: str | None = Field(default=None, description="Hugging Face model id, for users with hub access")
    artifact_key: str | None = Field(
        default=None,
        description="S3 key of model.tar.gz in the artifact bucket (written by `make upload`); "
        "default models/<name>/model.tar.gz",
    )
    params_billions: float = Field(gt=0, le=2000, description="parameter count in billions")
    dtype: Dtype = "bf16"
    quantization: Quantization = "none"

    @field_validator("artifact_key")
    @classmethod
    def _key_shape(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("/") or v.startswith("s3://") or not v.endswith(".tar.gz")):
            raise ValueError(
                "must be a key inside the artifact bucket ending in .tar.gz, e.g. models/gpt2/<sha>/model.tar.gz"
            )
        return v

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
    repository: str = Field(default="pytorch-inference", description="DLC repository in the region's DLC account")
    tag: str = Field(default="2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker")

    @field_validator("uri")
    @classmethod
    def _uri_shape(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^:@]+[:@].+$", v):
            raise ValueError("must be an ECR image URI <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>")
        return v


class ConcurrencyScaling(Section):
    """Optional second policy on the 10-second concurrency metric, which reacts faster for LLM traffic."""

    enabled: bool = False
    target_concurrent_requests: float = Field(default=8, gt=0, description="per model copy")


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
    image: ImageSection = ImageSection()
    environment: dict[str, str] = Field(default_factory=dict, description="extra container environment variables")
    health_check_timeout_s: int = Field(default=600, ge=60, le=3600)
    model_download_timeout_s: int = Field(default=600, ge=60, le=3600)
    data_capture: DataCapture = DataCapture()
    vpc: VpcSection = VpcSection()
    alarms: AlarmSection = AlarmSection()

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

    @property
    def target_invocations_per_instance_per_minute(self) -> float:
        """SageMakerVariantInvocationsPerInstance is a per-minute sum: QPS x 60."""
        return self.target_qps_per_instance * 60


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
    def _model_fits_instance(self) -> DeploymentConfig:
        if not self.endpoint.enabled:
            return self
        table = instance_table()
        inst = table.instances[self.endpoint.instance_type]
        m = self.model
        if fits(inst, m.params_billions, m.dtype, m.quantization):
            return self
        need = required_gib(m.params_billions, m.dtype, m.quantization)
        where = (
            f"{inst.gpus} x {inst.gpu_memory_gib:g} GiB GPU" if inst.gpus else f"{inst.memory_gib:g} GiB host memory"
        )
        precision = m.quantization if m.quantization != "none" else m.dtype
        options = [f"instance_type {n}" for n in suggest_instances(table, inst, need)]
        options += suggest_precisions(inst, m.params_billions, m.dtype)
        hint = "; try " + " or ".join(options) if options else ""
        raise ValueError(
            f"endpoint.instance_type: a {m.params_billions:g}B model at {precision} needs ~{need:.1f} GiB "
            f"(weights + {int(0.2 * 100)}% KV cache) but {inst.name} has {where} "
            f"({usable_gib(inst):.1f} GiB usable){hint}"
        )
