"""Gateway settings: the typed config's ``local:`` section (and ``router:``, for the hybrid route), overlaid by ``LLM_GATEWAY_*`` environment variables.

Read once at start-up (``load_settings``); a bad value stops start-up with a message naming the field.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.errors import ConfigError
from config.loader import format_validation_error, load_config
from config.local_section import LocalConfig, Profile
from config.router_section import RouterConfig


class EnvOverrides(BaseSettings):
    """What the environment may override (``LLM_GATEWAY_<FIELD>``); unset fields keep the config's value."""

    model_config = SettingsConfigDict(env_prefix="LLM_GATEWAY_", extra="ignore", frozen=True)

    env: str = Field(default="dev", description="config/<env>.yaml to read the local section from")
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    profile: Profile | None = None
    served_model: str | None = None
    vllm_url: str | None = None
    sglang_url: str | None = None
    ollama_url: str | None = None
    ollama_model: str | None = None
    vllm_model: str | None = None
    api_keys_file: str | None = None
    # The one secret: a plaintext key, hashed as soon as it is read and never logged.
    api_key: str | None = Field(default=None, repr=False)
    model_dir: str | None = Field(default=None, description="embedded engine's model directory")
    model_name: str | None = Field(default=None, description="embedded engine's served name (default: model_dir's)")


OVERRIDABLE = (
    "host",
    "port",
    "profile",
    "served_model",
    "vllm_url",
    "sglang_url",
    "ollama_url",
    "ollama_model",
    "vllm_model",
    "api_keys_file",
)


class GatewaySettings:
    """The resolved settings: the validated ``LocalConfig`` plus the secret key taken from the environment."""

    def __init__(self, local: LocalConfig, api_key: str | None = None, router: RouterConfig | None = None) -> None:
        """Args: local: the ``local:`` section; api_key: the plaintext key; router: the ``router:`` section, whose
        policy the hybrid route applies (``local.hybrid``; default: the section's defaults)."""
        self.local = local
        self._api_key = api_key
        self.router = router if router is not None else RouterConfig()

    @property
    def api_key(self) -> str | None:
        """The plaintext key from ``LLM_GATEWAY_API_KEY`` (None if unset)."""
        return self._api_key

    def __repr__(self) -> str:
        return f"GatewaySettings(local={self.local!r}, api_key={'***' if self._api_key else None})"


def apply_overrides(local: LocalConfig, env: EnvOverrides) -> LocalConfig:
    """Return ``local`` with every set environment override applied, re-validated.

    Raises:
        ConfigError: an override is invalid; the message names ``local.<field>``.
    """
    data = local.model_dump()
    for field in OVERRIDABLE:
        value = getattr(env, field)
        if value is not None:
            data[field] = value
    if env.model_dir is not None:
        # Another model is another name: re-derive it from the new directory rather than keep the old model's.
        data["embedded"]["model_dir"] = env.model_dir
        data["embedded"].pop("models", None)
    if env.model_name is not None:
        data["embedded"]["models"] = [env.model_name]
    try:
        return LocalConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(
            format_validation_error(err, "environment LLM_GATEWAY_*").replace(": ", ": local.", 1)
        ) from None


def load_settings() -> GatewaySettings:
    """Read ``config/<LLM_GATEWAY_ENV>.yaml``'s local section and the environment, once.

    Raises:
        ConfigError: the config file or an environment override is invalid.
    """
    try:
        env = EnvOverrides()
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "environment LLM_GATEWAY_*")) from None
    config = load_config(env.env)
    local = apply_overrides(config.local, env)
    return GatewaySettings(local, api_key=env.api_key, router=config.router)
