"""``local.kubernetes:`` — how `make k8s` lays the local stack out on a Kubernetes GPU cluster.

The engines themselves (names, kinds, models, roles, keys) stay in ``local`` (``local.profile`` / ``local.engines``);
this section only says how each vLLM/SGLang engine runs as pods: image, parallelism, GPU nodes, model cache, and the
gateway's replicas and who may reach it. Every field has a default so a config without it still validates; the
renderer (``local/k8s``) refuses what it cannot lay out, naming the field.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from config.base import Section

# DNS-1123 label: namespaces, Service and workload names.
K8S_NAME_RE = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# DNS-1123 subdomain: Secret and PVC names.
K8S_SUBDOMAIN_RE = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
CIDR_RE = r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$"
SECRET_KEY_RE = r"^[-._a-zA-Z0-9]{1,253}$"  # noqa: S105 - the pattern of a key name, not a secret
# Kubernetes resource quantities as this renderer accepts them: plain or milli CPUs; binary-suffixed bytes.
CPU_RE = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
MEMORY_RE = re.compile(r"^\d+(Ki|Mi|Gi|Ti)$")
MEMORY_UNITS_GIB = {"Ki": 1 / 1024**2, "Mi": 1 / 1024, "Gi": 1.0, "Ti": 1024.0}
# The Kubernetes minor version manifests are validated against (kubernetes-validate ships its OpenAPI schemas).
DEFAULT_KUBERNETES_VERSION = "1.33"
# Where every engine pod mounts its model cache; ``engines.<name>.model`` is a folder under it.
MODEL_MOUNT = "/models"
DEFAULT_IMAGES = {
    # Same tags as local/compose.yaml, so one host and one cluster run the same engine builds.
    "vllm": "vllm/vllm-openai:v0.11.0",
    "sglang": "lmsysorg/sglang:v0.5.3-cu126",
}
LabelKey = Annotated[str, Field(pattern=r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
K8sName = Annotated[str, Field(pattern=K8S_NAME_RE)]


def cpu_cores(q: str) -> float:
    """CPU quantity ("500m", "4") in cores."""
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def memory_gib(q: str) -> float:
    """Memory quantity ("512Mi", "64Gi") in GiB."""
    return int(q[:-2]) * MEMORY_UNITS_GIB[q[-2:]]


def check_cidr(v: str) -> str:
    """An IPv4 network with no host bits set (``10.30.0.0/16``).

    Raises:
        ValueError: not a network, or host bits set.
    """
    try:
        ipaddress.IPv4Network(v, strict=True)
    except ValueError as err:
        raise ValueError(f"{v!r}: not an IPv4 network ({err})") from None
    return v


def check_image(v: str) -> str:
    """An image reference pinned by tag (not ``latest``) or by digest.

    Raises:
        ValueError: untagged, ``:latest``, or whitespace in the reference.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?", v):
        raise ValueError(f"{v!r}: not an image reference (registry/repository:tag or @sha256:<digest>)")
    name = v.split("@", 1)[0]
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    if "@sha256:" not in v and not tag:
        raise ValueError(f"{v!r}: pin a tag or a digest (an untagged image means :latest)")
    if tag == "latest":
        raise ValueError(f"{v!r}: ':latest' moves under you; pin a version tag or a digest")
    return v


class Resources(Section):
    """Container requests and limits (limits default to the requests: guaranteed QoS for engines)."""

    cpu: str = Field(default="1", description="CPU request, e.g. 500m or 4")
    memory: str = Field(default="1Gi", description="memory request, e.g. 512Mi or 64Gi")
    cpu_limit: str | None = Field(default=None, description="CPU limit; default = cpu")
    memory_limit: str | None = Field(default=None, description="memory limit; default = memory")

    @field_validator("cpu", "cpu_limit")
    @classmethod
    def _cpu(cls, v: str | None) -> str | None:
        if v is not None and (not CPU_RE.match(v) or cpu_cores(v) <= 0):
            raise ValueError(f"{v!r}: a CPU quantity such as 500m or 4")
        return v

    @field_validator("memory", "memory_limit")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and (not MEMORY_RE.match(v) or memory_gib(v) <= 0):
            raise ValueError(f"{v!r}: a memory quantity with a binary suffix such as 512Mi or 64Gi")
        return v

    @model_validator(mode="after")
    def _limits(self) -> Resources:
        if cpu_cores(self.limit_cpu) < cpu_cores(self.cpu):
            raise ValueError(f"cpu_limit: {self.cpu_limit} is below the request {self.cpu}")
        if memory_gib(self.limit_memory) < memory_gib(self.memory):
            raise ValueError(f"memory_limit: {self.memory_limit} is below the request {self.memory}")
        return self

    @property
    def limit_cpu(self) -> str:
        return self.cpu_limit or self.cpu

    @property
    def limit_memory(self) -> str:
        return self.memory_limit or self.memory


class Toleration(Section):
    key: str = Field(pattern=r"^[A-Za-z0-9./_-]{1,253}$")
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"

    @model_validator(mode="after")
    def _value(self) -> Toleration:
        if self.operator == "Equal" and self.value is None:
            raise ValueError("value: required when operator is 'Equal'")
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("value: must be empty when operator is 'Exists'")
        return self


class GpuNodes(Section):
    """Where GPU pods may run (defaults follow the NVIDIA GPU Operator's labels and taints)."""

    resource: str = Field(default="nvidia.com/gpu", pattern=r"^[a-z0-9.-]+/[a-z0-9-]+$")
    gpus_per_node: int = Field(default=8, ge=1, le=64, description="GPUs on one node (one pod per node when more)")
    node_selector: dict[LabelKey, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    tolerations: list[Toleration] = Field(default_factory=lambda: [Toleration(key="nvidia.com/gpu")])


class ModelCache(Section):
    """The model weights on a PersistentVolumeClaim, read at start-up (no hub download in the cluster)."""

    existing_claim: str | None = Field(
        default=None, pattern=K8S_SUBDOMAIN_RE, description="use this pre-populated PVC instead of creating one"
    )
    size: str = Field(default="200Gi", description="size of the PVC created when existing_claim is unset")
    storage_class: str | None = Field(default=None, pattern=K8S_SUBDOMAIN_RE)
    access_mode: Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"] = Field(
        default="ReadWriteOnce", description="ReadWriteMany/ReadOnlyMany when pods on several nodes share it"
    )

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        if not MEMORY_RE.match(v):
            raise ValueError(f"{v!r}: a storage quantity such as 200Gi")
        return v


class EngineK8s(Section):
    """How one vLLM/SGLang engine of ``local`` runs as pods."""

    image: str | None = Field(default=None, description="engine image; default by kind (same tags as compose)")
    model: str = Field(
        default=f"{MODEL_MOUNT}/default",
        pattern=rf"^{MODEL_MOUNT}/[A-Za-z0-9._/-]+$",
        description=f"weights directory inside the model cache (mounted at {MODEL_MOUNT})",
    )
    replicas: int = Field(default=1, ge=1, le=64, description="independent copies (each a pod, or a pod group)")
    tensor_parallel_size: int = Field(default=1, ge=1, le=64)
    pipeline_parallel_size: int = Field(default=1, ge=1, le=64)
    max_num_batched_tokens: int = Field(default=8192, ge=256, le=1_048_576)
    gpu_memory_utilization: float = Field(default=0.85, gt=0.1, le=0.98)
    max_model_len: int | None = Field(default=None, ge=128, le=2_097_152)
    quantization: Literal["awq", "gptq", "fp8", "bitsandbytes"] | None = None
    resources: Resources = Resources(cpu="8", memory="64Gi")
    shm_size: str = Field(default="16Gi", description="shared memory size (NCCL and the engine's worker processes)")
    model_cache: ModelCache = ModelCache()
    startup_timeout_s: int = Field(default=1800, ge=60, le=7200, description="model load time before liveness")
    node_selector: dict[LabelKey, str] | None = Field(
        default=None, description="this engine's GPU nodes (e.g. a GPU model label); default gpu_nodes.node_selector"
    )

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        return None if v is None else check_image(v)

    @field_validator("shm_size")
    @classmethod
    def _shm(cls, v: str) -> str:
        if not MEMORY_RE.match(v):
            raise ValueError(f"{v!r}: a memory quantity such as 16Gi")
        return v

    @property
    def gpus(self) -> int:
        """GPUs one model copy needs: tensor x pipeline parallel."""
        return self.tensor_parallel_size * self.pipeline_parallel_size


class IngressCidr(Section):
    """Addresses outside the cluster that may call the gateway (e.g. the hybrid router's VPC over the VPN)."""

    cidr: str = Field(pattern=CIDR_RE)
    why: str = Field(min_length=3, max_length=200, description="shown on the review page next to the rule")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        return check_cidr(v)


class EgressCidr(Section):
    """An outbound destination the gateway may open connections to (its allowlist beyond the engines and DNS)."""

    cidr: str = Field(pattern=CIDR_RE)
    port: int = Field(ge=1, le=65535)
    why: str = Field(min_length=3, max_length=200, description="shown on the review page next to the rule")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        return check_cidr(v)


class GatewayK8s(Section):
    """The gateway's Deployment, HPA, and who may call it."""

    image: str = Field(
        default="llm-deploy-gateway:0.1.0", description="built from local/Dockerfile and pushed to your registry"
    )
    min_replicas: int = Field(default=2, ge=1, le=100)
    max_replicas: int = Field(default=6, ge=1, le=1000)
    target_cpu_utilization: int = Field(default=70, ge=10, le=95, description="HPA target, % of the CPU request")
    resources: Resources = Resources(cpu="1", memory="1Gi", cpu_limit="2")
    allowed_namespaces: list[K8sName] = Field(
        default_factory=list, description="namespaces whose pods may call the gateway (nothing else may)"
    )
    allowed_cidrs: list[IngressCidr] = Field(
        default_factory=list, description="networks outside the cluster that may call the gateway, each with why"
    )
    egress: list[EgressCidr] = Field(
        default_factory=list, description="the gateway's outbound allowlist beyond its engines and DNS"
    )
    api_key_secret: str = Field(
        default="llm-gateway-api-keys",
        pattern=K8S_SUBDOMAIN_RE,
        description="Secret (created by you, never rendered) with one key, or sha256:<hex>, per line",
    )
    api_key_secret_key: str = Field(default="api_keys", pattern=SECRET_KEY_RE)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return check_image(v)

    @model_validator(mode="after")
    def _bounds(self) -> GatewayK8s:
        rules: list[IngressCidr | EgressCidr] = [*self.allowed_cidrs, *self.egress]
        for i, c in enumerate(rules):
            if c.cidr.endswith("/0"):
                field = f"allowed_cidrs.{i}" if i < len(self.allowed_cidrs) else f"egress.{i - len(self.allowed_cidrs)}"
                raise ValueError(f"{field}.cidr: {c.cidr} is the whole internet; name the network")
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas: {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


class KubernetesConfig(Section):
    """`make k8s`: manifests for the local stack on a Kubernetes GPU cluster."""

    namespace: K8sName = "llm-serving"
    kubernetes_version: str = Field(
        default=DEFAULT_KUBERNETES_VERSION, pattern=r"^1\.\d{2}$", description="cluster minor version to validate for"
    )
    create_namespace: bool = Field(default=True, description="render the Namespace (Pod Security 'restricted')")
    gpu_nodes: GpuNodes = GpuNodes()
    engines: dict[str, EngineK8s] = Field(
        default_factory=dict, description="per vLLM/SGLang engine name in local; unlisted engines get the defaults"
    )
    engine_api_key_secret: str = Field(
        default="llm-engine-api-keys",
        pattern=K8S_SUBDOMAIN_RE,
        description="Secret with one key per engine api_key_env (e.g. VLLM_API_KEY), shared by gateway and engine",
    )
    gateway: GatewayK8s = GatewayK8s()
    monitoring_namespace: K8sName = Field(default="monitoring", description="where Prometheus runs")
    service_monitor_labels: dict[LabelKey, str] = Field(
        default_factory=dict, description="labels your Prometheus selects ServiceMonitors by, e.g. release: prom"
    )
    scrape_engines: bool = Field(
        default=True, description="let Prometheus reach the engines' port for /metrics (vLLM serves both on one)"
    )

    def engine(self, name: str) -> EngineK8s:
        """Settings of engine ``name`` (the defaults when it is not listed)."""
        return self.engines.get(name) or EngineK8s()

    def check_engines(self, kinds: dict[str, str]) -> None:
        """Check ``engines`` against the local engines (name -> kind) and the GPU nodes.

        Raises:
            ValueError: ``engines.<name>...: <why>`` for an unknown engine, a kind that cannot run here, a
                parallel layout that does not fill whole nodes, or a model cache pods on several nodes cannot share.
        """
        for name in self.engines:
            if name not in kinds:
                raise ValueError(f"engines.{name}: no such engine in local (engines: {sorted(kinds)})")
            if kinds[name] not in DEFAULT_IMAGES:
                raise ValueError(f"engines.{name}: a {kinds[name]} engine does not run on Kubernetes here")
        per_node = self.gpu_nodes.gpus_per_node
        for name, kind in kinds.items():
            if kind not in DEFAULT_IMAGES:
                continue
            e = self.engine(name)
            if e.gpus > per_node:
                if e.gpus % per_node:
                    raise ValueError(
                        f"engines.{name}.tensor_parallel_size: {e.tensor_parallel_size} x pipeline "
                        f"{e.pipeline_parallel_size} = {e.gpus} GPUs does not fill whole nodes of "
                        f"gpu_nodes.gpus_per_node {per_node}"
                    )
                if kind != "vllm":
                    raise ValueError(
                        f"engines.{name}.tensor_parallel_size: {e.gpus} GPUs span nodes; multi-node serving is "
                        f"rendered for vLLM (Ray) only, not {kind}"
                    )
            several_nodes = e.replicas > 1 or e.gpus > per_node
            if several_nodes and e.model_cache.access_mode == "ReadWriteOnce":
                raise ValueError(
                    f"engines.{name}.model_cache.access_mode: ReadWriteOnce cannot be mounted by pods on several "
                    "nodes (replicas > 1 or multi-node); use ReadWriteMany or ReadOnlyMany"
                )
