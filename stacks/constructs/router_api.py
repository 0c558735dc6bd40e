"""The hybrid router: Lambda (asset = ``router/`` and the vendored ``wire/``), HTTP API with an IAM or JWT
authorizer and access logs, the on-prem gateway's key in Secrets Manager under a customer-managed KMS key, optional VPC attachment, alarms.

The construct takes the SageMaker endpoint as a protocol (name, ARN, ``grant_invoke``) so it depends on no
particular endpoint construct.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jsii
from aws_cdk import (
    ArnFormat,
    AssetHashType,
    BundlingOptions,
    DockerImage,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.constructs.alarm_topic import AlarmTopic, threshold_alarm
from stacks.nag import acknowledge, checkov_skip

ROUTER_DIR = Path(__file__).resolve().parents[2] / "router"
WIRE_DIR = ROUTER_DIR.parent / "wire"  # the OpenAI wire package the router imports, vendored next to it
HANDLER = "router.handler.lambda_handler"
CHAT_PATH = "/v1/chat/completions"
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.userArn",
    "jwtSub": "$context.authorizer.claims.sub",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
}


class RouterEndpoint(Protocol):
    """What the router needs from the SageMaker endpoint construct."""

    @property
    def endpoint_name(self) -> str: ...

    @property
    def endpoint_arn(self) -> str: ...

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant: ...


@dataclass(frozen=True)
class RouterApiProps:
    """Everything the construct needs, already validated by the ``router:`` config section.

    ``environment`` holds the Lambda's ``ROUTER_*`` variables other than the endpoint and secret (added here).
    """

    environment: dict[str, str]
    authorizer: str = "iam"
    jwt_issuer: str | None = None
    jwt_audience: list[str] = field(default_factory=list)
    subnet_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    memory_mb: int = 512
    timeout_s: int = 29
    log_retention_days: int = 365
    throttle_rate: int = 100
    throttle_burst: int = 200
    alarm_emails: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.authorizer not in ("iam", "jwt"):
            raise ValueError(f"authorizer: {self.authorizer!r}; expected iam or jwt")
        if self.authorizer == "jwt" and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError("jwt_issuer / jwt_audience: both required for the jwt authorizer")
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise ValueError("subnet_ids / security_group_ids: give both or neither")
        if not 1 <= self.timeout_s <= 29:
            raise ValueError(f"timeout_s: {self.timeout_s}; the HTTP API gives up at 30 s, so 1..29")


def latest_python_runtime() -> lambda_.Runtime:
    """The newest ``PYTHON_3_x`` runtime the installed aws-cdk-lib knows (cdk-nag L1 wants the latest)."""
    versions = [
        (int(m.group(1)), name) for name in dir(lambda_.Runtime) if (m := re.fullmatch(r"PYTHON_3_(\d+)", name))
    ]
    return getattr(lambda_.Runtime, max(versions)[1])


def stage_router_asset(output_dir: Path) -> None:
    """Write the Lambda asset: ``router/`` and the ``wire/`` package it imports, each copied as is."""
    for src in (ROUTER_DIR, WIRE_DIR):
        shutil.copytree(src, output_dir / src.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


@jsii.implements(ILocalBundling)
class _RouterPackage:
    """Stage the asset as ``<asset>/router/*`` and ``<asset>/wire/*`` (their import paths) with Python alone."""

    def try_bundle(self, output_dir: str, *_options: Any, **_kw: Any) -> bool:
        stage_router_asset(Path(output_dir))
        return True


def router_code() -> lambda_.Code:
    """The Lambda asset: the ``router/`` folder and the vendored ``wire/`` package, staged as packages."""
    return lambda_.Code.from_asset(
        str(ROUTER_DIR),
        exclude=["__pycache__", "*.pyc"],
        asset_hash_type=AssetHashType.OUTPUT,  # the hash covers wire/ too, not only the source folder
        # The image is never pulled: local bundling always succeeds; CDK requires one to be named.
        bundling=BundlingOptions(
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"), local=_RouterPackage()
        ),
    )


class RouterApi(Construct):
    """The router Lambda behind an authorized HTTP API.

    Args:
        props: validated settings.
        endpoint: the SageMaker endpoint (its ``grant_invoke`` gives the Lambda invoke rights on it alone).

    Attributes:
        function, api, secret, key, alarms: the main resources, for stacks and tests.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: RouterApiProps, endpoint: RouterEndpoint) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description="Hybrid router: gateway key secret, Lambda environment and log groups",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CloudWatch Logs encrypts both log groups with this key; it may use it only for log groups of this account.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        self.secret = secretsmanager.Secret(
            self,
            "GatewayKey",
            description="API key of the on-prem OpenAI-compatible gateway, read by the hybrid router",
            encryption_key=self.key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for rule in ("AwsSolutions-SMG4", "HIPAA.Security-SecretsManagerRotationEnabled"):
            acknowledge(
                self.secret,
                rule,
                "The key is issued by the on-prem gateway, which AWS cannot reach to rotate it; operators rotate it "
                "there and put the new value here. The router re-reads the secret every 5 minutes.",
            )
        self.function_logs = logs.LogGroup(
            self,
            "FunctionLogs",
            encryption_key=self.key,
            retention=_retention(props.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            encryption_key=self.key,
            retention=_retention(props.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Hybrid router Lambda: its log group, its secret, invoke of one SageMaker endpoint",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.function_logs.log_group_arn, f"{self.function_logs.log_group_arn}:log-stream:*"],
            )
        )
        environment = dict(props.environment) | {
            "ROUTER_SAGEMAKER_ENDPOINT": endpoint.endpoint_name,
            "ROUTER_LOCAL_SECRET_ARN": self.secret.secret_arn,
        }
        self.function = lambda_.Function(
            self,
            "Function",
            description="Hybrid router: keeps sensitive requests on-prem, sends complex ones to SageMaker",
            runtime=latest_python_runtime(),
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLER,
            code=router_code(),
            memory_size=props.memory_mb,
            timeout=Duration.seconds(props.timeout_s),
            environment=environment,
            environment_encryption=self.key,
            role=self.role,
            log_group=self.function_logs,
        )
        logs_id = stack.resolve(stack.get_logical_id(self.function_logs.node.default_child))  # type: ignore[arg-type]
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::<{logs_id}.Arn>:log-stream:*]",
            "Lambda names its log streams at run time; the grant is limited to the function's own log group.",
        )
        acknowledge(
            self.role,
            "HIPAA.Security-IAMNoInlinePolicy",
            "The role's policy is written by CDK grants (its log group, its secret and KMS key, invoke of one "
            "endpoint), scoped to exact ARNs, used by this role alone and versioned with the stack.",
        )
        self.secret.grant_read(self.function)
        endpoint.grant_invoke(self.function)
        self._attach_vpc(props)
        self._acknowledge_function_rules(props)
        # CDK makes the function depend on its role and the role's policy; the role dependency is already implied
        # by the Role GetAtt (cfn-lint W3005). Keep only the policy, so the first invocation has its permissions.
        default_policy = self.role.node.find_child("DefaultPolicy").node.default_child
        fn_cfn = self.function.node.default_child
        assert isinstance(fn_cfn, lambda_.CfnFunction) and isinstance(default_policy, iam.CfnPolicy)
        fn_cfn.add_override("DependsOn", [stack.get_logical_id(default_policy)])

        self.api = apigw.HttpApi(
            self,
            "Api",
            description="OpenAI-compatible chat completions, routed on-prem or to SageMaker",
            create_default_stage=False,
            default_authorizer=self._authorizer(props),
        )
        self.stage = apigw.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=props.throttle_rate, burst_limit=props.throttle_burst),
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.access_logs.log_group_arn, format=json.dumps(ACCESS_LOG_FORMAT)
        )
        self.api.add_routes(
            path=CHAT_PATH,
            methods=[apigw.HttpMethod.POST],
            integration=integrations.HttpLambdaIntegration("Router", self.function),
        )
        self.alarms = self._alarms(list(props.alarm_emails))

    def _authorizer(self, props: RouterApiProps) -> apigw.IHttpRouteAuthorizer:
        if props.authorizer == "jwt":
            assert props.jwt_issuer is not None
            return authorizers.HttpJwtAuthorizer("Jwt", props.jwt_issuer, jwt_audience=list(props.jwt_audience))
        return authorizers.HttpIamAuthorizer()

    def _attach_vpc(self, props: RouterApiProps) -> None:
        if not props.subnet_ids:
            reason = (
                "No private path configured: the on-prem gateway is reached over TLS on its public address; prod-like "
                "environments refuse this without a reasoned network.overrides entry (docs/NETWORK.md)."
            )
            acknowledge(self.function, "HIPAA.Security-LambdaInsideVPC", reason)
            checkov_skip(self.function, "CKV_AWS_117", reason)
            return
        # Existing subnets by id, no context lookups at synth: set VpcConfig on the L1 resource directly.
        cfn = self.function.node.default_child
        assert isinstance(cfn, lambda_.CfnFunction)
        cfn.vpc_config = lambda_.CfnFunction.VpcConfigProperty(
            subnet_ids=list(props.subnet_ids), security_group_ids=list(props.security_group_ids)
        )
        # A customer-managed policy on the role: the role (and so the function) waits for it at deploy time.
        policy = iam.ManagedPolicy(
            self,
            "VpcAccess",
            description="Hybrid router Lambda: network interfaces in its configured subnets",
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DeleteNetworkInterface",
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    resources=["*"],
                )
            ],
        )
        self.role.add_managed_policy(policy)
        eni_reason = "Lambda creates its network interfaces at run time; these EC2 actions accept no resource ARN."
        acknowledge(policy, "AwsSolutions-IAM5[Resource::*]", eni_reason)
        checkov_skip(policy, "CKV_AWS_111", eni_reason)

    def _acknowledge_function_rules(self, props: RouterApiProps) -> None:
        no_dlq = (
            "The router is invoked synchronously by the HTTP API; a failed request returns an error to its caller, "
            "so there is no asynchronous event to dead-letter."
        )
        no_reserved = (
            "The HTTP API stage throttles requests (rate/burst from config); reserving concurrency would take it "
            "from every other function of the account."
        )
        acknowledge(self.function, "HIPAA.Security-LambdaDLQ", no_dlq)
        checkov_skip(self.function, "CKV_AWS_116", no_dlq)
        acknowledge(self.function, "HIPAA.Security-LambdaConcurrency", no_reserved)
        checkov_skip(self.function, "CKV_AWS_115", no_reserved)

    def _alarms(self, emails: list[str]) -> list[cw.Alarm]:
        five_min = Duration.minutes(5)
        alarms = [
            threshold_alarm(
                self,
                "Errors",
                description="Hybrid router Lambda errors (unhandled exceptions or timeouts) in 5 minutes",
                metric=self.function.metric_errors(period=five_min, statistic="Sum"),
                threshold=1,
            ),
            threshold_alarm(
                self,
                "Throttles",
                description="Hybrid router Lambda throttled in 5 minutes (account concurrency exhausted)",
                metric=self.function.metric_throttles(period=five_min, statistic="Sum"),
                threshold=1,
            ),
            threshold_alarm(
                self,
                "Api5xx",
                description="Hybrid router API 5XX answers (e.g. on-prem down for sensitive requests) in 5 minutes",
                metric=cw.Metric(
                    namespace="AWS/ApiGateway",
                    metric_name="5xx",
                    dimensions_map={"ApiId": self.api.api_id, "Stage": "$default"},
                    statistic="Sum",
                    period=five_min,
                ),
                threshold=5,
            ),
        ]
        self.alarm_topic = AlarmTopic(
            self, "AlarmTopic", key=self.key, display_name="Hybrid router alarms", emails=emails
        )
        self.topic = self.alarm_topic.topic
        self.alarm_topic.notify(*alarms)
        return alarms


_RETENTION = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}


def _retention(days: int) -> logs.RetentionDays:
    if days in _RETENTION:
        return getattr(logs.RetentionDays, _RETENTION[days])
    raise ValueError(f"log_retention_days: {days} is not a CloudWatch Logs retention period")
