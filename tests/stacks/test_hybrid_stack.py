"""Template assertions for the hybrid router stack, cdk-nag clean (IAM and JWT authorizers, with and without VPC)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sm
from aws_cdk.assertions import Match, Template

from config import load_config
from config.router_section import RouterConfig
from router.settings import ENV_VARS, Settings
from stacks.constructs.router_api import latest_python_runtime
from stacks.context import cdk_context
from stacks.hybrid_stack import HybridStack
from stacks.lint import run_cfn_lint
from stacks.nag import apply_nag

INVOKE = "sagemaker:InvokeEndpoint"


class FakeEndpoint:
    """A real CfnEndpoint implementing the router's endpoint protocol (name, ARN, grant_invoke)."""

    def __init__(self, stack: Stack) -> None:
        self.cfn = sm.CfnEndpoint(stack, "Endpoint", endpoint_config_name="config-for-tests")
        self.endpoint_name = self.cfn.attr_endpoint_name
        self.endpoint_arn = stack.format_arn(service="sagemaker", resource="endpoint", resource_name="llm-dev")

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(grantee=grantee, actions=[INVOKE], resource_arns=[self.endpoint_arn])


def synth(router: RouterConfig, outdir: Path) -> tuple[App, Template]:
    config = load_config("dev").model_copy(update={"router": router})
    app = App(outdir=str(outdir), context=cdk_context(env="dev"))
    endpoint = FakeEndpoint(Stack(app, "EndpointStack"))
    hybrid = HybridStack(app, "Hybrid", config=config, endpoint=endpoint)
    apply_nag(app)
    app.synth()  # raises RuntimeError("ValidationFailed") on any unacknowledged cdk-nag finding
    return app, Template.from_stack(hybrid)


@pytest.fixture(scope="module")
def iam_t(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Template]:
    out = tmp_path_factory.mktemp("hybrid-iam")
    _, template = synth(RouterConfig(), out)
    return out, template


JWT_OUT: list[Path] = []


@pytest.fixture(scope="module")
def jwt_vpc_t(tmp_path_factory: pytest.TempPathFactory) -> Template:
    router = RouterConfig.model_validate(
        {
            "policy": "redact_to_cloud",
            "authorizer": {"type": "jwt", "issuer": "https://login.bank.example/", "audience": ["llm-router"]},
            "vpc": {"subnet_ids": ["subnet-0123456789abcdef0"], "security_group_ids": ["sg-0123456789abcdef0"]},
            "custom_keywords": ["project falcon"],
        }
    )
    out = tmp_path_factory.mktemp("hybrid-jwt")
    JWT_OUT.append(out)
    return synth(router, out)[1]


def only(template: Template, rtype: str) -> dict[str, Any]:
    found = template.find_resources(rtype)
    assert len(found) == 1, f"expected one {rtype}, found {len(found)}"
    return next(iter(found.values()))


def statements(template: Template) -> list[dict[str, Any]]:
    out = []
    for rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in template.find_resources(rtype).values():
            out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def test_lambda_runtime_arch_and_env(iam_t: tuple[Path, Template]) -> None:
    fn = only(iam_t[1], "AWS::Lambda::Function")["Properties"]
    assert fn["Runtime"] == latest_python_runtime().name and fn["Runtime"].startswith("python3.")
    assert fn["Architectures"] == ["arm64"] and fn["Handler"] == "router.handler.lambda_handler"
    assert fn["Timeout"] <= 29 and "KmsKeyArn" in fn
    env = fn["Environment"]["Variables"]
    assert set(env) <= set(ENV_VARS) and env["ROUTER_POLICY"] == "local_only"
    # The runtime reads exactly these variables: unresolved tokens (endpoint, secret) replaced by plain strings.
    plain = {k: v if isinstance(v, str) else "x" for k, v in env.items()}
    settings = Settings.from_env(plain)
    assert settings.policy == "local_only" and settings.local_url.startswith("https://")
    assert "VpcConfig" not in fn


def test_asset_is_router_and_vendored_wire_only(iam_t: tuple[Path, Template]) -> None:
    out, template = iam_t
    fn = only(template, "AWS::Lambda::Function")
    asset_hash = fn["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    asset = out / f"asset.{asset_hash}"
    assert sorted(p.name for p in asset.iterdir()) == ["router", "wire"]
    files = {p.name for p in (asset / "router").iterdir()}
    assert {"handler.py", "detect.py", "complexity_weights.json"} <= files and "__pycache__" not in files


def test_http_api_iam_authorizer_and_access_logs(iam_t: tuple[Path, Template]) -> None:
    t = iam_t[1]
    t.has_resource_properties(
        "AWS::ApiGatewayV2::Route", {"RouteKey": "POST /v1/chat/completions", "AuthorizationType": "AWS_IAM"}
    )
    stage = only(t, "AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["StageName"] == "$default" and "DestinationArn" in stage["AccessLogSettings"]
    assert "$context.status" in stage["AccessLogSettings"]["Format"]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 100


def test_kms_secret_and_logs(iam_t: tuple[Path, Template]) -> None:
    t = iam_t[1]
    key_id = next(iter(t.find_resources("AWS::KMS::Key")))
    t.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    t.has_resource_properties("AWS::SecretsManager::Secret", {"KmsKeyId": {"Fn::GetAtt": [key_id, "Arn"]}})
    for lg in t.find_resources("AWS::Logs::LogGroup").values():
        assert lg["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        assert lg["Properties"]["RetentionInDays"] == 365


def test_iam_least_privilege(iam_t: tuple[Path, Template]) -> None:
    stmts = statements(iam_t[1])
    invoke = [s for s in stmts if s["Action"] == INVOKE]
    assert len(invoke) == 1 and "endpoint/llm-dev" in json.dumps(invoke[0]["Resource"])
    secret = [s for s in stmts if "secretsmanager:GetSecretValue" in s["Action"]]
    assert len(secret) == 1 and "Ref" in secret[0]["Resource"]
    for s in stmts:
        assert s["Resource"] != "*", f"wildcard resource for {s['Action']}"
    logs = [s for s in stmts if "logs:PutLogEvents" in s["Action"]]
    assert len(logs) == 1


def test_alarms_on_errors_and_throttles(iam_t: tuple[Path, Template]) -> None:
    alarms = iam_t[1].find_resources("AWS::CloudWatch::Alarm").values()
    names = {a["Properties"].get("MetricName") for a in alarms}
    assert {"Errors", "Throttles", "5xx"} <= names
    assert all(a["Properties"]["AlarmActions"] for a in alarms)


def test_jwt_authorizer_and_vpc(jwt_vpc_t: Template) -> None:
    jwt_vpc_t.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {
            "AuthorizerType": "JWT",
            "JwtConfiguration": {"Issuer": "https://login.bank.example/", "Audience": ["llm-router"]},
        },
    )
    jwt_vpc_t.has_resource_properties("AWS::ApiGatewayV2::Route", {"AuthorizationType": "JWT"})
    fn = only(jwt_vpc_t, "AWS::Lambda::Function")["Properties"]
    assert fn["VpcConfig"] == {"SubnetIds": ["subnet-0123456789abcdef0"], "SecurityGroupIds": ["sg-0123456789abcdef0"]}
    env = fn["Environment"]["Variables"]
    assert env["ROUTER_POLICY"] == "redact_to_cloud" and json.loads(env["ROUTER_CUSTOM_KEYWORDS"]) == ["project falcon"]
    eni = [s for s in statements(jwt_vpc_t) if "ec2:CreateNetworkInterface" in s["Action"]]
    assert len(eni) == 1 and eni[0]["Resource"] == "*"  # ENI actions take no resource ARN (acknowledged)
    jwt_vpc_t.has_resource_properties("AWS::Lambda::Function", {"Architectures": Match.exact(["arm64"])})


def test_cfn_lint_clean(iam_t: tuple[Path, Template], jwt_vpc_t: Template) -> None:
    templates = [iam_t[0] / "Hybrid.template.json", JWT_OUT[0] / "Hybrid.template.json"]
    assert run_cfn_lint(templates) == []
