"""``local:`` section — the on-prem OpenAI-compatible gateway and the engines behind it.

Every field has a default so a config file without ``local:`` still validates. Engines come from a *profile*
(``embedded`` on a laptop, ``gpu`` for the compose stack, ``dev`` = everything on Ollama) unless the profile is
``custom``, in which case ``engines`` lists them explicitly.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from config.base import Section
from config.kubernetes_section import KubernetesConfig

EngineKind = Literal["vllm", "sglang", "ollama", "embedded", "sagemaker"]
Role = Literal["default", "structured"]
Profile = Literal["embedded", "gpu", "dev", "custom"]
ENGINE_NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,31}$"
MODEL_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
SHA256_RE = r"^[0-9a-f]{64}$"
TINY_MODEL_DIR = "local/.models/tiny-smoke-test-gpt2"
TINY_MODEL_NAME = "tiny-smoke-test-gpt2"
# The real default model: SmolLM2-135M-Instruct converted from a pinned wheel (model_packages/real_model.py).
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_MODEL_DIR = f"local/.models/{DEFAULT_MODEL_NAME}"
# Kinds whose server enforces response_format itself (guided decoding / Ollama ``format``).
SCHEMA_ENFORCING_KINDS: frozenset[str] = frozenset({"vllm", "sglang", "ollama"})
# Kinds that answer n > 1 with n choices.
N_CAPABLE_KINDS: frozenset[str] = frozenset({"vllm", "sglang"})

ModelName = Annotated[str, Field(pattern=MODEL_NAME_RE)]


def model_name_from_dir(model_dir: str) -> str:
    """The name a model directory (or hub id) is served under: its last path component.

    ``/models/Qwen2.5-0.5B-Instruct`` -> ``Qwen2.5-0.5B-Instruct``; ``Qwen/Qwen2.5-0.5B-Instruct`` -> the same.
    """
    return PurePath(model_dir.rstrip("/")).name or model_dir


class EngineSpec(Section):
    """One engine the gateway can send requests to."""

    name: str = Field(pattern=ENGINE_NAME_RE, description="unique engine name used in metrics and error messages")
    kind: EngineKind
    base_url: str | None = Field(default=None, description="http(s)://host:port of the engine; not for embedded")
    models: list[ModelName] = Field(
        min_length=1, description="public model names this engine serves (embedded: defaults to model_dir's name)"
    )
    upstream_models: dict[str, str] = Field(
        default_factory=dict, description="public model name -> the engine's own name, when they differ"
    )
    roles: list[Role] = Field(default_factory=lambda: list[Role](["default"]), min_length=1)
    api_key_env: str | None = Field(default=None, description="environment variable holding the engine's API key")
    connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    read_timeout_s: float = Field(default=120.0, gt=0, le=3600, description="max wait between two upstream reads")
    max_connections: int = Field(default=512, ge=1, le=65536)
    request_timeout_s: float = Field(
        default=300.0, gt=0, le=3600, description="deadline for one request on this engine, stream included"
    )
    pool_timeout_s: float = Field(default=5.0, gt=0, le=600, description="max wait for a free connection slot")
    max_upstream_bytes: int = Field(
        default=64 * 1_048_576, ge=1024, le=4096 * 1_048_576, description="cap on one answer's bytes from the engine"
    )
    # embedded only
    model_dir: str = Field(default=DEFAULT_MODEL_DIR, description="embedded: model directory or hub id")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    load_in_4bit: bool = Field(default=False, description="embedded: bitsandbytes 4-bit (GPU only)")
    cpu_linear_threads: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = Field(
        default="auto",
        description="embedded on cpu: threads for the linear layers only; auto: measured while serving, the "
        "engine's thread count or every CPU, whichever decodes faster (a shared box favours the first)",
    )
    max_batch_size: int = Field(default=16, ge=1, le=1024)
    # The KV cache holds max_input_tokens + max_new_tokens per sequence; the default fits every model we ship (the
    # smoke-test model has 1024 positions, SmolLM2 8192). Raise both for long prompts on a real model.
    max_input_tokens: int = Field(default=768, ge=1, le=131_072, description="embedded: longest prompt accepted")
    max_new_tokens: int = Field(default=256, ge=1, le=131_072, description="embedded: cap on max_tokens")
    # sagemaker only (credentials: the standard boto3 chain; base_url: optional runtime URL of a VPC endpoint)
    endpoint_name: str | None = Field(
        default=None, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", description="sagemaker: the endpoint's name"
    )
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="sagemaker: region")
    endpoint_engine: Literal["handler", "lmi"] = Field(
        default="lmi", description="sagemaker: the endpoint's endpoint.engine (lmi streams tokens; handler buffers)"
    )

    @model_validator(mode="before")
    @classmethod
    def _embedded_name(cls, data: Any) -> Any:
        # An embedded engine is served under its model's own name unless ``models`` says otherwise, so pointing
        # ``model_dir`` at another model is one line and never serves it under the previous model's name.
        if isinstance(data, dict) and data.get("kind") == "embedded" and not data.get("models"):
            data = {**data, "models": [model_name_from_dir(str(data.get("model_dir") or DEFAULT_MODEL_DIR))]}
        return data

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("http://") or v.startswith("https://")):
            raise ValueError(f"{v!r}: must start with http:// or https:// (e.g. http://127.0.0.1:8000)")
        return v.rstrip("/") if v else v

    @model_validator(mode="after")
    def _kind_fields(self) -> EngineSpec:
        if self.kind == "sagemaker":
            if not self.endpoint_name:
                raise ValueError("endpoint_name: required for a sagemaker engine (the SageMaker endpoint's name)")
        elif self.endpoint_name or self.region:
            raise ValueError("endpoint_name: only for a sagemaker engine")
        if self.kind not in ("embedded", "sagemaker") and not self.base_url:
            raise ValueError(f"base_url: required for a {self.kind} engine (e.g. http://127.0.0.1:8000)")
        if self.kind == "embedded" and self.base_url:
            raise ValueError("base_url: an embedded engine runs in the gateway process; remove base_url")
        unknown = sorted(set(self.upstream_models) - set(self.models))
        if unknown:
            raise ValueError(f"upstream_models: {unknown} not in models {self.models}")
        return self

    @property
    def supports_n(self) -> bool:
        """True when the engine returns several choices for ``n > 1`` (vLLM and SGLang do)."""
        return self.kind in N_CAPABLE_KINDS

    @property
    def enforces_schema(self) -> bool:
        """True when the engine itself constrains output to a JSON schema."""
        return self.kind in SCHEMA_ENFORCING_KINDS

    def upstream_model(self, model: str) -> str:
        """The name the engine knows ``model`` by."""
        return self.upstream_models.get(model, model)


class KeySpec(Section):
    """An API key, stored only as its SHA-256 (``sha256sum`` of the key, hex)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    sha256: str = Field(pattern=SHA256_RE, description="hex SHA-256 of the key; never put the key itself here")
    rate_per_s: float | None = Field(default=None, gt=0, description="override of rate_limit.per_key_per_s")
    burst: int | None = Field(default=None, ge=1)


class RateLimitSpec(Section):
    per_key_per_s: float = Field(default=20.0, gt=0, le=1_000_000, description="token-bucket refill, requests/s")
    burst: int = Field(default=40, ge=1, le=1_000_000, description="bucket size, requests")


class BreakerSpec(Section):
    failure_threshold: int = Field(default=5, ge=1, le=1000, description="consecutive failures that open it")
    cooldown_s: float = Field(default=10.0, gt=0, le=3600, description="open time before one probe request")


class HybridSpec(Section):
    """``local.hybrid``: a public model whose requests the gateway routes with the hybrid router's policy.

    The decision is made on-prem, by the same code and the same ``router:`` settings as the router Lambda
    (``router/decision.py``): sensitive, unscannable or simple requests are answered by ``local_model``'s engines;
    only what the policy allows goes to the ``cloud`` SageMaker endpoint, built from scanned fields only
    (docs/HYBRID.md).
    """

    enabled: bool = Field(default=False, description="serve the hybrid model")
    model: ModelName = Field(default="hybrid", description="public model name of the hybrid route")
    local_model: ModelName | None = Field(
        default=None, description="the on-prem model that answers what stays local (default: the first served)"
    )
    cloud: EngineSpec | None = Field(
        default=None,
        description="the SageMaker endpoint (kind sagemaker; name/kind/models filled in) reached only through this "
        "route",
    )

    @field_validator("cloud", mode="before")
    @classmethod
    def _cloud_defaults(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, dict):
            return {"name": "cloud", "kind": "sagemaker", **v, "models": [info.data.get("model", "hybrid")]}
        return v

    @model_validator(mode="after")
    def _cloud_is_sagemaker(self) -> HybridSpec:
        if self.enabled and self.cloud is None:
            raise ValueError("cloud: required when hybrid is enabled (e.g. {endpoint_name: llm-prod, region: ...})")
        if self.cloud is not None:
            if self.cloud.kind != "sagemaker":
                raise ValueError(f"cloud.kind: must be sagemaker (got {self.cloud.kind})")
            if self.cloud.models != [self.model]:
                raise ValueError(f"cloud.models: the cloud engine serves only the hybrid model {self.model!r}")
        return self


class LocalConfig(Section):
    """Settings for `make local-up` and the OpenAI-compatible gateway."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    profile: Profile = Field(default="embedded", description="embedded | gpu | dev (all Ollama) | custom")
    served_model: ModelName = Field(default="default", description="gpu/dev profiles: public model name")
    vllm_url: str = "http://127.0.0.1:8000"
    sglang_url: str = "http://127.0.0.1:30000"
    ollama_url: str = "http://127.0.0.1:11434"
    ollama_model: str = Field(default="llm-deploy", description="the Ollama model (see local/ollama/Modelfile)")
    vllm_model: str = Field(default="default", description="--served-model-name of vLLM and SGLang in compose")
    embedded: EngineSpec = Field(
        default=EngineSpec(name="embedded", kind="embedded", models=[DEFAULT_MODEL_NAME]),
        description="profile embedded: the in-process engine; `embedded: {model_dir: DIR}` serves DIR as its name",
    )
    engines: list[EngineSpec] = Field(default_factory=list, description="profile custom: the engines")
    keys: list[KeySpec] = Field(default_factory=list)
    api_keys_file: str | None = Field(default=None, description="file with one key (or sha256:<hex>) per line")
    rate_limit: RateLimitSpec = RateLimitSpec()
    breaker: BreakerSpec = BreakerSpec()
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=256 * 1_048_576)
    structured_retries: int = Field(default=2, ge=0, le=10, description="re-asks when output fails its schema")
    default_max_tokens: int = Field(default=256, ge=1, le=1_000_000)
    request_timeout_s: float = Field(
        default=600.0, gt=0, le=7200, description="deadline for a whole request, failover attempts included"
    )
    max_n: int = Field(default=16, ge=1, le=128, description="largest n accepted (engines that support n only)")
    metrics_require_key: bool = Field(default=False, description="/metrics needs an API key like /v1/*")
    kubernetes: KubernetesConfig = Field(
        default_factory=KubernetesConfig, description="`make k8s` (docs/KUBERNETES.md)"
    )
    hybrid: HybridSpec = Field(
        default_factory=HybridSpec, description="the on-prem hybrid route (router policy decided here)"
    )

    @field_validator("embedded", mode="before")
    @classmethod
    def _embedded_defaults(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {"name": "embedded", "kind": "embedded", **v}
        return v

    @field_validator("vllm_url", "sglang_url", "ollama_url")
    @classmethod
    def _urls(cls, v: str) -> str:
        if not (v.startswith("http://") or v.startswith("https://")):
            raise ValueError(f"{v!r}: must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _engines(self) -> LocalConfig:
        if self.profile == "custom" and not self.engines:
            raise ValueError("engines: profile 'custom' needs at least one engine")
        if self.profile != "custom" and self.engines:
            raise ValueError(f"engines: only used with profile 'custom' (profile is {self.profile!r})")
        names = [e.name for e in self.engines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"engines: duplicate engine names {dupes}")
        return self

    @model_validator(mode="after")
    def _kubernetes_engines(self) -> LocalConfig:
        try:
            self.kubernetes.check_engines({e.name: e.kind for e in self.resolved_engines()})
        except ValueError as err:
            raise ValueError(f"kubernetes.{err}") from None
        return self

    @model_validator(mode="after")
    def _hybrid(self) -> LocalConfig:
        h = self.hybrid
        if not h.enabled:
            return self
        engines = self.resolved_engines()
        served = [m for e in engines for m in e.models]
        public = [e.name for e in engines if e.kind == "sagemaker"]
        if public:
            raise ValueError(
                f"hybrid: engine(s) {public} of kind sagemaker would let clients reach the cloud without the hybrid "
                "policy; with hybrid enabled the SageMaker endpoint is configured as hybrid.cloud only"
            )
        if h.model in served:
            raise ValueError(f"hybrid.model: {h.model!r} is already served by an engine; pick another name")
        if h.cloud is not None and h.cloud.name in {e.name for e in engines}:
            raise ValueError(f"hybrid.cloud.name: {h.cloud.name!r} is already an engine's name; pick another")
        if h.local_model is not None and h.local_model not in served:
            raise ValueError(f"hybrid.local_model: {h.local_model!r} is not served; served: {', '.join(served)}")
        return self

    def hybrid_local_model(self) -> str:
        """The model that answers the hybrid route's local requests."""
        return self.hybrid.local_model or self.resolved_engines()[0].models[0]

    def resolved_engines(self) -> list[EngineSpec]:
        """The engines for the chosen profile, in failover order."""
        m = self.served_model
        if self.profile == "custom":
            return list(self.engines)
        if self.profile == "embedded":
            return [self.embedded]
        ollama = EngineSpec(
            name="ollama",
            kind="ollama",
            base_url=self.ollama_url,
            models=[m],
            upstream_models={m: self.ollama_model},
            roles=["default", "structured"],
        )
        if self.profile == "dev":
            return [ollama]
        vllm = EngineSpec(
            name="vllm",
            kind="vllm",
            base_url=self.vllm_url,
            models=[m],
            upstream_models={m: self.vllm_model},
            api_key_env="VLLM_API_KEY",
        )
        sglang = EngineSpec(
            name="sglang",
            kind="sglang",
            base_url=self.sglang_url,
            models=[m],
            upstream_models={m: self.vllm_model},
            roles=["structured"],
        )
        return [vllm, sglang, ollama]
