"""Read ``config/<env>.yaml`` once into a :class:`DeploymentConfig`, turning every problem into a ConfigError."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.atomic import write_text_atomic
from config.errors import ConfigError
from config.schema import DeploymentConfig

CONFIG_DIR = Path(__file__).resolve().parent
ENV_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def config_path(env: str, config_dir: Path = CONFIG_DIR) -> Path:
    if not ENV_RE.match(env):
        raise ConfigError(f"env: {env!r} is not a valid environment name (lowercase letters, digits, '-')")
    return config_dir / f"{env}.yaml"


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: ``<file>: <field.path>: <what is wrong and what is allowed>``."""
    lines = []
    for e in err.errors():
        loc = _loc(e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check spelling; see docs/CONFIG.md for the allowed keys)"
        elif e["type"] == "literal_error":
            msg = f"{msg}, got {e.get('input')!r}"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
            # model-level validators put their own field path first ("min_instances: ...").
            head = msg.split(":", 1)[0]
            if re.fullmatch(r"[a-z0-9_.]+", head) and "." in head and loc == "<root>":
                loc, msg = head, msg.split(":", 1)[1].strip()
            elif re.fullmatch(r"[a-z0-9_.]+", head) and head != loc.rsplit(".", 1)[-1]:
                loc, msg = f"{loc}.{head}" if loc != "<root>" else head, msg.split(":", 1)[1].strip()
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "<config>") -> DeploymentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: <root>: expected a mapping of sections (environment, model, endpoint, ...)")
    try:
        return DeploymentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config_file(path: Path) -> DeploymentConfig:
    """Load and validate one YAML file. Raises ConfigError naming the file and field."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    cfg = parse_config(data, str(path))
    return cfg


def load_config(env: str, config_dir: Path = CONFIG_DIR) -> DeploymentConfig:
    """Load ``config/<env>.yaml``; the file's ``environment`` must equal ``env``."""
    path = config_path(env, config_dir)
    if not path.is_file():
        known = sorted(p.stem for p in config_dir.glob("*.yaml") if p.stem != "instances")
        raise ConfigError(f"env: no config/{env}.yaml; known environments: {', '.join(known)}")
    cfg = load_config_file(path)
    if cfg.environment != env:
        raise ConfigError(f"{path}: environment: {cfg.environment!r} does not match the file name {env!r}")
    return cfg


def with_engine(cfg: DeploymentConfig, engine: str, source: str = "-c engine") -> DeploymentConfig:
    """``cfg`` with ``endpoint.engine`` replaced (``cdk synth -c engine=lmi``), validated again as a whole.

    Raises:
        ConfigError: the engine is unknown or the config does not hold with it (e.g. the model does not fit).
    """
    data = cfg.model_dump(exclude_unset=True)
    data.setdefault("endpoint", {})["engine"] = engine
    return parse_config(data, source)


def update_config_value(path: Path, dotted: str, value: str) -> None:
    """Set one scalar in a config file atomically (used by `make upload` to record the artifact key).

    Round-trips the YAML so comments and key order survive, re-validates the whole result before replacing the
    file, and writes through a temp file + rename, so a bad or interrupted write never lands.
    """
    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    data = rt.load(path.read_text(encoding="utf-8"))
    node = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        if p not in node:
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value
    text = _dump(rt, data)
    parse_config(yaml.safe_load(text), str(path))
    write_text_atomic(path, text)


def _dump(rt: Any, data: Any) -> str:
    import io

    buf = io.StringIO()
    rt.dump(data, buf)
    return buf.getvalue()
