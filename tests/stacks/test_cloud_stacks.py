"""Template assertions for the artifact and endpoint stacks (dev and prod), cdk-nag and cfn-lint."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from config import load_config
from config.loader import parse_config
from stacks.app_builder import build_app
from stacks.context import cdk_context
from stacks.lint import run_cfn_lint
from stacks.nag import apply_nag
from stacks.review import build_review

REPO = Path(__file__).resolve().parents[2]


def only(template: Template, rtype: str) -> dict[str, Any]:
    found = template.find_resources(rtype)
    assert len(found) == 1, f"expected one {rtype}, found {len(found)}"
    return next(iter(found.values()))


@pytest.fixture(scope="module")
def prod_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cdk-prod")
    built = build_app(load_config("prod"), App(outdir=str(out), context=cdk_context(env="prod")))
    built.app.synth()  # raises RuntimeError("ValidationFailed") on any unacknowledged nag finding
    return out


@pytest.fixture(scope="module")
def prod_templates(prod_outdir: Path) -> dict[str, Template]:
    return {
        name: Template.from_json(json.loads((prod_outdir / f"llm-prod-{name}.template.json").read_text()))
        for name in ("artifacts", "endpoint")
    }


@pytest.fixture(scope="module")
def endpoint_t(prod_templates: dict[str, Template]) -> Template:
    return prod_templates["endpoint"]


@pytest.fixture(scope="module")
def artifacts_t(prod_templates: dict[str, Template]) -> Template:
    return prod_templates["artifacts"]


# --- autoscaling ---------------------------------------------------------------------------------------------


def test_scalable_target_resource_id_and_bounds(endpoint_t: Template) -> None:
    target = only(endpoint_t, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert target["ResourceId"] == "endpoint/llm-prod-gpt2-large/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert target["ServiceNamespace"] == "sagemaker"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 10)
    assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in json.dumps(target["RoleARN"])


def test_qps_target_tracking_is_50_qps_times_60(endpoint_t: Template) -> None:
    policies = endpoint_t.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    by_metric = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]: p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in policies.values()
    }
    qps = by_metric["SageMakerVariantInvocationsPerInstance"]
    assert qps["TargetValue"] == 3000
    assert (qps["ScaleOutCooldown"], qps["ScaleInCooldown"]) == (60, 600)
    conc = by_metric["SageMakerVariantConcurrentRequestsPerModelHighResolution"]
    assert conc["TargetValue"] == 8


def test_scheduled_window_raises_then_restores_min(endpoint_t: Template) -> None:
    target = only(endpoint_t, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    actions = {a["ScheduledActionName"]: a for a in target["ScheduledActions"]}
    start, end = actions["singles-day-promotion-start"], actions["singles-day-promotion-end"]
    assert start["Schedule"] == "cron(0 20 10 11 ? *)"
    assert start["Timezone"] == end["Timezone"] == "Asia/Shanghai"
    assert start["ScalableTargetAction"]["MinCapacity"] == 6
    assert end["ScalableTargetAction"]["MinCapacity"] == 2
    assert end["Schedule"] == "cron(0 2 12 11 ? *)"


# --- endpoint ------------------------------------------------------------------------------------------------


def test_endpoint_retains_variant_properties(endpoint_t: Template) -> None:
    endpoint_t.has_resource_properties(
        "AWS::SageMaker::Endpoint",
        {"EndpointName": "llm-prod-gpt2-large", "RetainAllVariantProperties": True},
    )


def test_variant_and_timeouts(endpoint_t: Template) -> None:
    cfg = only(endpoint_t, "AWS::SageMaker::EndpointConfig")["Properties"]
    (variant,) = cfg["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g5.2xlarge"
    assert variant["InitialInstanceCount"] == 2
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 900
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 900
    # g5 has local NVMe: SageMaker rejects KmsKeyId, so it must be absent.
    assert "KmsKeyId" not in cfg


def test_data_capture_is_encrypted_under_the_bucket(endpoint_t: Template) -> None:
    cfg = only(endpoint_t, "AWS::SageMaker::EndpointConfig")["Properties"]
    capture = cfg["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 10
    assert "llm-prod-artifacts-key-arn" in json.dumps(capture["KmsKeyId"])
    assert "data-capture/llm-prod-gpt2-large" in json.dumps(capture["DestinationS3Uri"])


def test_model_is_isolated_in_the_vpc_and_image_is_resolved_per_region(endpoint_t: Template) -> None:
    model = only(endpoint_t, "AWS::SageMaker::Model")["Properties"]
    assert model["EnableNetworkIsolation"] is True
    assert len(model["VpcConfig"]["Subnets"]) == 2
    image = json.dumps(model["PrimaryContainer"]["Image"])
    assert "Fn::FindInMap" in image  # DLC account from CDK region facts, not a literal account id
    assert "/pytorch-inference:" in image
    assert "models/gpt2-large/model.tar.gz" in json.dumps(model["PrimaryContainer"]["ModelDataUrl"])
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"


def test_handler_environment_is_generated_from_the_typed_config(endpoint_t: Template) -> None:
    """model.dtype and endpoint.runtime reach the container (before, only a free-form dict did, typos included)."""
    env = only(endpoint_t, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]["Environment"]
    assert env["DTYPE"] == "float16"  # prod.yaml model.dtype: fp16
    assert {k: env[k] for k in ("MAX_INPUT_TOKENS", "MAX_NEW_TOKENS", "DEFAULT_MAX_NEW_TOKENS", "MAX_BATCH_SIZE")} == {
        "MAX_INPUT_TOKENS": "1024",
        "MAX_NEW_TOKENS": "512",
        "DEFAULT_MAX_NEW_TOKENS": "128",
        "MAX_BATCH_SIZE": "32",
    }
    assert (env["TRUNCATE_INPUT"], env["COMPILE"], env["LOAD_IN_4BIT"]) == ("true", "auto", "false")
    assert not any(k.startswith("OPTION_") for k in env)


def test_volume_key_is_set_where_the_instance_allows_it() -> None:
    data = yaml.safe_load((REPO / "config" / "dev.yaml").read_text())
    data["endpoint"]["instance_type"] = "ml.p3.2xlarge"
    built = build_app(parse_config(data), nag=False)
    assert built.endpoint is not None
    cfg = only(Template.from_stack(built.endpoint), "AWS::SageMaker::EndpointConfig")["Properties"]
    assert "llm-dev-artifacts-key-arn" in json.dumps(cfg["KmsKeyId"])


# --- IAM -----------------------------------------------------------------------------------------------------


def _statements(template: Template) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for res in template.find_resources(rtype).values():
            out += res["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_execution_role_reads_only_the_model_prefix(endpoint_t: Template) -> None:
    policy = only(endpoint_t, "AWS::IAM::ManagedPolicy")["Properties"]
    statements = policy["PolicyDocument"]["Statement"]
    s3_reads = [s for s in statements if "s3:GetObject" in json.dumps(s["Action"])]
    assert len(s3_reads) == 1
    assert s3_reads[0]["Action"] == "s3:GetObject"
    assert json.dumps(s3_reads[0]["Resource"]).endswith('"/models/gpt2-large/*"]]}')
    ecr = next(s for s in statements if "ecr:BatchGetImage" in s["Action"])
    assert "repository/pytorch-inference" in json.dumps(ecr["Resource"])
    logs = [s for s in statements if "logs:PutLogEvents" in json.dumps(s["Action"])]
    assert "/aws/sagemaker/Endpoints/llm-prod-gpt2-large" in json.dumps(logs[0]["Resource"])
    metrics = next(s for s in statements if s["Action"] == "cloudwatch:PutMetricData")
    assert "cloudwatch:namespace" in json.dumps(metrics["Condition"])


def test_no_managed_full_access_and_no_star_actions(prod_templates: dict[str, Template]) -> None:
    for template in prod_templates.values():
        raw = json.dumps(template.to_json())
        assert "FullAccess" not in raw
        for s in _statements(template):
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert all(a != "*" and not a.endswith(":*") for a in actions), s


def test_grant_invoke_targets_only_this_endpoint() -> None:
    built = build_app(load_config("dev"), nag=False)
    assert built.endpoint is not None
    consumer = Stack(built.app, "consumer")
    role = iam.Role(consumer, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    built.endpoint.endpoint.grant_invoke(role)
    statement = Template.from_stack(consumer).find_resources("AWS::IAM::Policy")
    (policy,) = statement.values()
    (s,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(s["Action"]) == ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"]
    assert json.dumps(s["Resource"]).endswith(':endpoint/llm-dev-gpt2-large"]]}')


# --- storage -------------------------------------------------------------------------------------------------


def test_artifact_bucket_is_locked_down(artifacts_t: Template) -> None:
    artifacts_t.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like({"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})})
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "artifacts/"}),
            "LifecycleConfiguration": {
                "Rules": [Match.object_like({"NoncurrentVersionExpiration": {"NoncurrentDays": 90}})]
            },
        },
    )
    for bucket in artifacts_t.find_resources("AWS::S3::Bucket").values():
        assert "BucketName" not in bucket["Properties"]  # no hard-coded physical names
    policies = artifacts_t.find_resources("AWS::S3::BucketPolicy")
    assert all(
        any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        )
        for p in policies.values()
    )


def test_keys_rotate(prod_templates: dict[str, Template]) -> None:
    for template in prod_templates.values():
        for key in template.find_resources("AWS::KMS::Key").values():
            assert key["Properties"]["EnableKeyRotation"] is True


# --- observability -------------------------------------------------------------------------------------------


def test_alarms_page_an_encrypted_topic(endpoint_t: Template) -> None:
    topic = only(endpoint_t, "AWS::SNS::Topic")["Properties"]
    assert "KmsMasterKeyId" in topic
    alarms = {
        a["Properties"]["AlarmDescription"]: a["Properties"]
        for a in endpoint_t.find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert len(alarms) == 3
    latency = next(a for d, a in alarms.items() if "p99 ModelLatency" in d)
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Threshold"] == 3000 * 1000  # ms -> µs
    errors = next(a for d, a in alarms.items() if "5XX" in d)
    assert (errors["MetricName"], errors["Threshold"]) == ("Invocation5XXErrors", 5)
    capacity = next(a for d, a in alarms.items() if "max capacity" in d)
    assert capacity["Threshold"] == 9.5
    assert capacity["EvaluationPeriods"] == 15
    assert "inv / ipi" in json.dumps(capacity["Metrics"])
    for a in alarms.values():
        assert len(a["AlarmActions"]) == 1 and "Ref" in a["AlarmActions"][0]
    endpoint_t.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    endpoint_t.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email"})


# --- security findings are part of the build -------------------------------------------------------------------


def test_dev_app_is_nag_clean() -> None:
    build_app(load_config("dev")).app.synth()


def test_nag_check_is_live() -> None:
    app = App(context=cdk_context())
    stack = Stack(app, "BadStack")
    s3.Bucket(stack, "Unencrypted", encryption=s3.BucketEncryption.UNENCRYPTED, enforce_ssl=False)
    apply_nag(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def test_templates_are_cfn_lint_clean(prod_outdir: Path) -> None:
    templates = sorted(prod_outdir.glob("*.template.json"))
    assert len(templates) >= 2
    assert run_cfn_lint(templates) == []


def test_review_describes_scaling_cost_iam_and_acks(prod_outdir: Path, tmp_path: Path) -> None:
    (prod_outdir / "cfn-lint.json").write_text("[]")
    text = build_review(load_config("prod"), prod_outdir, None)
    assert "2–10 × ml.g5.2xlarge; adds instances when a minute averages more than 50 requests/s" in text
    assert "TargetValue 3000" in text
    assert "$2,212 – $11,059 per month" in text
    assert "| Allow | s3:GetObject | <import:llm-prod-artifacts-bucket-arn>/models/gpt2-large/* |" in text
    assert "HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured" in text
    assert "0 unacknowledged findings" in text
    assert "(no previous review: everything is new)" in text
    assert "Engine `handler`: our inference.py on the PyTorch inference container" in text
    assert "`DTYPE=float16`" in text


# --- the CLI path users run ----------------------------------------------------------------------------------


def _cdk_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        CDK_DISABLE_VERSION_CHECK="1",
        CDK_DISABLE_CLI_TELEMETRY="1",
        CDK_HOME=str(REPO / ".cdk-home"),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )
    return env


@pytest.mark.slow
def test_cdk_cli_synth_rejects_a_bad_config_with_its_message(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "config" / "prod.yaml").read_text())
    data["environment"] = "broken"
    data["model"]["params_billions"] = 13
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(data))
    proc = subprocess.run(
        [str(REPO / "node_modules/.bin/cdk"), "synth", "--quiet", "-c", "env=broken", "--output", str(tmp_path / "o")],
        cwd=REPO,
        env=_cdk_env(LLM_DEPLOY_CONFIG_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0
    assert "endpoint.instance_type: a 13B model at fp16 needs" in proc.stderr


def test_existing_vpc_is_used_without_lookups_and_stays_nag_clean() -> None:
    data = yaml.safe_load((REPO / "config" / "dev.yaml").read_text())
    data["endpoint"]["vpc"] = {
        "mode": "existing",
        "vpc_id": "vpc-0123456789abcdef0",
        "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
        "availability_zones": ["us-east-1a", "us-east-1b"],
    }
    built = build_app(parse_config(data))
    built.app.synth()
    assert built.endpoint is not None
    t = Template.from_stack(built.endpoint)
    model = only(t, "AWS::SageMaker::Model")["Properties"]
    assert model["VpcConfig"]["Subnets"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    t.resource_count_is("AWS::EC2::VPC", 0)
    t.has_resource_properties("AWS::EC2::SecurityGroup", {"VpcId": "vpc-0123456789abcdef0"})


def test_image_uri_from_config_grants_pull_on_its_own_repository() -> None:
    data = yaml.safe_load((REPO / "config" / "dev.yaml").read_text())
    uri = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/llm-serving:1.4.2"
    data["endpoint"]["image"] = {"uri": uri}
    built = build_app(parse_config(data), nag=False)
    assert built.endpoint is not None
    t = Template.from_stack(built.endpoint)
    assert only(t, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]["Image"] == uri
    ecr = next(s for s in _statements(t) if "ecr:BatchGetImage" in s["Action"])
    assert json.dumps(ecr["Resource"]).endswith(':ecr:eu-west-1:111122223333:repository/team/llm-serving"]]}')
