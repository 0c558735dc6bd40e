"""Typed deployment configuration: one pydantic model, read once (``app.py``, CLIs), passed as objects."""

from config.errors import ConfigError
from config.loader import load_config, load_config_file
from config.schema import DeploymentConfig

__all__ = ["ConfigError", "DeploymentConfig", "load_config", "load_config_file"]
