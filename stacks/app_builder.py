"""Build the whole CDK app from one typed config (used by app.py and by the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import App, Environment, Stack, Tags

from config import DeploymentConfig
from stacks.artifacts_stack import ArtifactsStack
from stacks.cloud_stack import EndpointStack
from stacks.context import cdk_context
from stacks.hybrid_stack import HybridStack
from stacks.nag import apply_nag


@dataclass
class BuiltApp:
    app: App
    artifacts: ArtifactsStack
    endpoint: EndpointStack | None
    hybrid: Stack | None


def stack_name(config: DeploymentConfig, part: str) -> str:
    return f"llm-{config.environment}-{part}"


def build_app(config: DeploymentConfig, app: App | None = None, *, nag: bool = True) -> BuiltApp:
    """Compose every stack for ``config`` into ``app`` (a new App when none is given) and attach cdk-nag."""
    app = app or App(context=cdk_context(env=config.environment))
    env = Environment(account=config.aws.account, region=config.aws.region) if config.aws.account else None
    kwargs: dict[str, Any] = {"env": env} if env else {}
    artifacts = ArtifactsStack(
        app,
        stack_name(config, "artifacts"),
        config=config,
        description=f"Model artifact storage ({config.environment})",
        **kwargs,
    )
    endpoint = None
    hybrid = None
    if config.endpoint.enabled:
        endpoint = EndpointStack(
            app,
            stack_name(config, "endpoint"),
            config=config,
            description=f"SageMaker endpoint {config.endpoint_name} ({config.environment})",
            **kwargs,
        )
        endpoint.add_stack_dependency(artifacts, "imports the artifact bucket and key by export name")
        hybrid = _build_hybrid(app, config, endpoint, kwargs)
    for key, value in {"app": "llm-deploy", **config.tags}.items():
        Tags.of(app).add(key, value)
    if nag:
        apply_nag(app)
    return BuiltApp(app=app, artifacts=artifacts, endpoint=endpoint, hybrid=hybrid)


def _build_hybrid(app: App, config: DeploymentConfig, endpoint: EndpointStack, kwargs: dict[str, Any]) -> Stack | None:
    """The hybrid router stack, when the config enables it."""
    if not config.router.enabled:
        return None
    return HybridStack(
        app,
        stack_name(config, "hybrid"),
        config=config,
        endpoint=endpoint.endpoint,
        description=f"Hybrid router ({config.environment})",
        **kwargs,
    )
