"""``router:`` section — the hybrid router Lambda and its HTTP API (owned by the hybrid work).

The CDK hybrid stack turns these values into the Lambda's environment variables (``ROUTER_*``); the runtime code in
``router/`` reads only those variables and never imports this package.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from config.base import Section
from router.limits import DEFAULT_ALLOW_ROUTE_HINT, DEFAULT_POLICY, LIMITS, Bound

Policy = Literal["local_only", "redact_to_cloud"]
Target = Literal["local", "cloud"]

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
# An HTTP API integration gives up after 30 s; the Lambda (and a failover that tries both targets) must end before.
HTTP_API_INTEGRATION_LIMIT_S = 29.0


def _bounded(name: str, description: str | None = None) -> Any:
    """A field whose default and bounds come from ``router.limits`` (the table the Lambda validates against)."""
    b: Bound = LIMITS[name]
    lower = {"gt": b.lo} if b.lo_open else {"ge": b.lo}
    default: float | int = int(b.default) if b.integer else b.default
    hi: float | int = int(b.hi) if b.integer else b.hi
    lo: dict[str, Any] = {k: int(v) if b.integer else v for k, v in lower.items()}
    return Field(default=default, le=hi, description=description, **lo)


class CustomPattern(Section):
    """An extra sensitive-data regex (e.g. an internal customer number), matched case-sensitively."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="type reported when it matches, e.g. customer_no")
    regex: str = Field(min_length=1, max_length=500)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"is not a valid Python regular expression: {exc}") from None
        if compiled.match("") is not None:
            raise ValueError("matches the empty string; it would flag every request")
        return v


class CallerOverride(Section):
    """Per-caller settings, keyed by the caller id (IAM user/role ARN or the JWT ``sub`` claim)."""

    policy: Policy | None = None
    complexity_threshold: float | None = Field(default=None, ge=0, le=1)
    force_target: Target | None = Field(
        default=None, description="always route this caller here; 'cloud' never applies to sensitive requests"
    )


class AuthorizerSection(Section):
    """Who may call the router's HTTP API."""

    type: Literal["iam", "jwt"] = "iam"
    issuer: str | None = Field(default=None, description="JWT issuer URL (https://...), required for type jwt")
    audience: list[str] = Field(default_factory=list, description="accepted JWT audiences, required for type jwt")

    @model_validator(mode="after")
    def _jwt_needs_issuer(self) -> AuthorizerSection:
        if self.type == "jwt":
            if not self.issuer or not self.issuer.startswith("https://"):
                raise ValueError("issuer: required for authorizer type 'jwt' and must be an https:// URL")
            if not self.audience:
                raise ValueError("audience: give at least one audience for authorizer type 'jwt'")
        return self


class RouterVpcSection(Section):
    """Attach the Lambda to existing private subnets that reach on-prem over VPN / Direct Connect."""

    subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(default_factory=list)
    security_group_ids: list[Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _both_or_neither(self) -> RouterVpcSection:
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise ValueError("subnet_ids / security_group_ids: give both (to attach the Lambda to a VPC) or neither")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.subnet_ids)


class RouterConfig(Section):
    """Settings for the hybrid router."""

    enabled: bool = Field(default=True, description="deploy the hybrid stack (router Lambda + HTTP API)")
    policy: Policy = Field(
        default=DEFAULT_POLICY,
        description="local_only: sensitive requests stay on-prem (503 if it is down); "
        "redact_to_cloud: complex sensitive requests go to the cloud with each value replaced by a placeholder",
    )
    complexity_threshold: float = _bounded(
        "complexity_threshold", "score at or above which a request is complex (use `make router-calibrate`)"
    )
    custom_patterns: list[CustomPattern] = Field(default_factory=list)
    custom_keywords: list[Annotated[str, Field(min_length=2, max_length=100)]] = Field(
        default_factory=list, description="words that mark a request sensitive (matched case-insensitively)"
    )
    local_url: str = Field(
        default="https://llm-gateway.internal.example:8443",
        description="base URL of the on-prem OpenAI-compatible gateway (without /v1)",
    )
    local_timeout_s: float = _bounded("local_timeout_s")
    cloud_timeout_s: float = _bounded("cloud_timeout_s")
    breaker_failures: int = _bounded("breaker_failures", "consecutive failures that open a breaker")
    breaker_reset_s: float = _bounded("breaker_reset_s", "how long an open breaker skips a target")
    max_body_bytes: int = _bounded("max_body_bytes", "larger request bodies get a 400")
    default_max_tokens: int = _bounded("default_max_tokens", "max_tokens when a request gives none")
    allow_route_hint: bool = Field(
        default=DEFAULT_ALLOW_ROUTE_HINT, description="honour the x-route: local|cloud request header"
    )
    caller_overrides: dict[str, CallerOverride] = Field(default_factory=dict)
    authorizer: AuthorizerSection = AuthorizerSection()
    vpc: RouterVpcSection = RouterVpcSection()
    memory_mb: int = Field(default=512, ge=128, le=10240)
    throttle_rate_per_s: int = Field(default=100, ge=1, le=10000, description="HTTP API steady-state request rate")
    throttle_burst: int = Field(default=200, ge=1, le=5000, description="HTTP API burst")
    log_retention_days: int = Field(default=365)

    @field_validator("local_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$", v):
            raise ValueError("must be an http(s) URL such as https://gateway.bank.internal:8443")
        return v.rstrip("/")

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"{v} is not a CloudWatch Logs retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        return v

    @model_validator(mode="after")
    def _fits_http_api(self) -> RouterConfig:
        total = self.local_timeout_s + self.cloud_timeout_s
        if total > HTTP_API_INTEGRATION_LIMIT_S - 1:
            raise ValueError(
                f"local_timeout_s + cloud_timeout_s: {total:g} s; a failover tries both and must end within "
                f"{HTTP_API_INTEGRATION_LIMIT_S - 1:g} s (the HTTP API gives up at 30 s)"
            )
        return self

    @property
    def lambda_timeout_s(self) -> int:
        """The Lambda's timeout: both targets' timeouts plus a margin, below the HTTP API's 30 s."""
        return int(min(HTTP_API_INTEGRATION_LIMIT_S, self.local_timeout_s + self.cloud_timeout_s + 1))


def router_environment(router: RouterConfig) -> dict[str, str]:
    """The ``ROUTER_*`` variables from the config section (names: ``router/settings.py`` ENV_VARS): the router
    Lambda's environment, and what the on-prem gateway's hybrid route reads its settings from (the same parser).

    The endpoint name and the secret ARN are added by the construct, which owns those resources.
    """
    return {
        "ROUTER_POLICY": router.policy,
        "ROUTER_COMPLEXITY_THRESHOLD": repr(router.complexity_threshold),
        "ROUTER_CUSTOM_PATTERNS": json.dumps([p.model_dump() for p in router.custom_patterns]),
        "ROUTER_CUSTOM_KEYWORDS": json.dumps(list(router.custom_keywords), ensure_ascii=False),
        "ROUTER_LOCAL_URL": router.local_url,
        "ROUTER_LOCAL_TIMEOUT_S": repr(router.local_timeout_s),
        "ROUTER_CLOUD_TIMEOUT_S": repr(router.cloud_timeout_s),
        "ROUTER_BREAKER_FAILURES": str(router.breaker_failures),
        "ROUTER_BREAKER_RESET_S": repr(router.breaker_reset_s),
        "ROUTER_MAX_BODY_BYTES": str(router.max_body_bytes),
        "ROUTER_DEFAULT_MAX_TOKENS": str(router.default_max_tokens),
        "ROUTER_ALLOW_ROUTE_HINT": "true" if router.allow_route_hint else "false",
        "ROUTER_CALLER_OVERRIDES": json.dumps(
            {k: v.model_dump(exclude_none=True) for k, v in router.caller_overrides.items()}
        ),
    }
