#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c env=prod` (or `make synth ENV=prod`). Reads the typed config once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aws_cdk import App

from config import ConfigError, load_config
from config.loader import with_engine
from stacks.app_builder import build_app


def main() -> int:
    app = App()
    env = app.node.try_get_context("env") or "dev"
    try:
        # LLM_DEPLOY_CONFIG_DIR points at another folder of <env>.yaml files (tests, private overlays).
        config_dir = os.environ.get("LLM_DEPLOY_CONFIG_DIR")
        config = load_config(str(env), Path(config_dir)) if config_dir else load_config(str(env))
        # `-c engine=lmi` (make synth ENGINE=lmi) serves the same config with the other engine.
        engine = app.node.try_get_context("engine")
        if engine:
            config = with_engine(config, str(engine), f"config/{env}.yaml with -c engine={engine}")
    except ConfigError as err:
        print(f"config error:\n{err}", file=sys.stderr)
        return 2
    build_app(config, app)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
