"""The LMI (vLLM) engine variant: the Llama-3-8B worked example synthesized nag-clean and cfn-lint clean, the
generated OPTION_* environment, tensor parallel on a 4-GPU instance, scaling on concurrency, and the review."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App
from aws_cdk.assertions import Template

from config import load_config
from config.loader import parse_config, with_engine
from stacks.app_builder import build_app
from stacks.context import cdk_context
from stacks.lint import run_cfn_lint
from stacks.review import build_review

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "config" / "examples"


def only(template: Template, rtype: str) -> dict[str, Any]:
    found = template.find_resources(rtype)
    assert len(found) == 1, f"expected one {rtype}, found {len(found)}"
    return next(iter(found.values()))


@pytest.fixture(scope="module")
def llama_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cdk-llama")
    cfg = load_config("llama3-8b", EXAMPLES)
    built = build_app(cfg, App(outdir=str(out), context=cdk_context(env="llama3-8b")))
    built.app.synth()  # raises on any unacknowledged cdk-nag finding (AwsSolutions + HIPAA)
    return out


@pytest.fixture(scope="module")
def llama_t(llama_outdir: Path) -> Template:
    return Template.from_json(json.loads((llama_outdir / "llm-llama3-8b-endpoint.template.json").read_text()))


@pytest.fixture(scope="module")
def tp4_t() -> Template:
    """13B fp16 on ml.g5.12xlarge: only fits sharded over the 4 GPUs (see tests/config for the TP=1 refusal)."""
    data = yaml.safe_load((EXAMPLES / "llama3-8b.yaml").read_text())
    data["model"] |= {"name": "llama-2-13b-chat", "params_billions": 13, "dtype": "fp16"}
    data["model"].pop("artifact_key")
    data["endpoint"] |= {"instance_type": "ml.g5.12xlarge", "vpc": {"mode": "none"}}
    data["endpoint"]["data_capture"] = {"enabled": False}
    built = build_app(parse_config(data), nag=False)
    assert built.endpoint is not None
    return Template.from_stack(built.endpoint)


def test_lmi_model_runs_vllm_with_options_from_the_typed_config(llama_t: Template) -> None:
    container = only(llama_t, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    env = container["Environment"]
    assert {k: v for k, v in env.items() if k != "SAGEMAKER_REGION"} == {
        "SERVING_FAIL_FAST": "true",
        "OPTION_ROLLING_BATCH": "vllm",
        "OPTION_TENSOR_PARALLEL_DEGREE": "1",  # ml.g5.2xlarge has one GPU
        "OPTION_MAX_MODEL_LEN": "8192",  # runtime.max_input_tokens 6144 + max_new_tokens 2048
        "OPTION_DTYPE": "bf16",
        "OPTION_GPU_MEMORY_UTILIZATION": "0.9",
        "OPTION_MAX_ROLLING_BATCH_SIZE": "32",
        "OPTION_ENABLE_PREFIX_CACHING": "true",
    }
    # no handler variables leak into the LMI container
    assert not any(k.startswith("SAGEMAKER_PROGRAM") or k.startswith("MAX_") for k in env)


def test_lmi_image_is_resolved_per_region_and_pinned(llama_t: Template) -> None:
    container = only(llama_t, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    image = json.dumps(container["Image"])
    assert "Fn::FindInMap" in image  # DLC account from CDK's region facts
    assert "/djl-inference:0.36.0-lmi18.0.0-cu128" in image
    policy = only(llama_t, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]["Statement"]
    ecr = next(s for s in policy if "ecr:BatchGetImage" in s["Action"])
    assert "repository/djl-inference" in json.dumps(ecr["Resource"])


def test_uncompressed_weights_come_from_a_prefix_the_role_may_list(llama_t: Template) -> None:
    props = only(llama_t, "AWS::SageMaker::Model")["Properties"]
    container = props["PrimaryContainer"]
    assert "ModelDataUrl" not in container
    source = container["ModelDataSource"]["S3DataSource"]
    assert (source["S3DataType"], source["CompressionType"]) == ("S3Prefix", "None")
    assert json.dumps(source["S3Uri"]).endswith('/models/llama-3-8b-instruct/weights/"]]}')
    statements = only(llama_t, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]["Statement"]
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["models/llama-3-8b-instruct/weights/*"]}}
    assert props["EnableNetworkIsolation"] is True
    assert len(props["VpcConfig"]["Subnets"]) == 2


def test_lmi_startup_timeouts_grow_with_the_weights(llama_t: Template) -> None:
    (variant,) = only(llama_t, "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    # ~15 GiB of bf16 weights: 600 + 15 s/GiB to load and capture graphs, 600 + 10 s/GiB to download
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 824
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 749
    assert variant["InstanceType"] == "ml.g5.2xlarge"
    assert "VolumeSizeInGB" not in variant  # g5 has local NVMe; SageMaker refuses a volume size there


def _policies(template: Template) -> dict[str, dict[str, Any]]:
    return {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]: p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    }


def test_lmi_scales_on_concurrency_from_the_batch_size_and_keeps_the_qps_rule(llama_t: Template) -> None:
    by_metric = _policies(llama_t)
    assert by_metric["SageMakerVariantConcurrentRequestsPerModelHighResolution"]["TargetValue"] == 24  # 75% of 32
    assert by_metric["SageMakerVariantInvocationsPerInstance"]["TargetValue"] == 3000  # 50 QPS x 60


def test_tensor_parallel_defaults_to_all_gpus_and_scales_the_concurrency_target(tp4_t: Template) -> None:
    env = only(tp4_t, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]["Environment"]
    assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"
    assert env["OPTION_DTYPE"] == "fp16"
    # one sharded copy per instance: the target stays 75% of one copy's 32 slots
    assert _policies(tp4_t)["SageMakerVariantConcurrentRequestsPerModelHighResolution"]["TargetValue"] == 24
    (variant,) = only(tp4_t, "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600 + int(15 * 13e9 * 2 / 1024**3)


def test_tensor_parallel_two_runs_two_copies_and_doubles_the_target() -> None:
    data = yaml.safe_load((EXAMPLES / "llama3-8b.yaml").read_text())
    data["endpoint"] |= {"instance_type": "ml.g5.12xlarge", "lmi": {"tensor_parallel_degree": 2}}
    cfg = parse_config(data)
    assert (cfg.endpoint.tensor_parallel_degree, cfg.endpoint.model_copies) == (2, 2)
    assert cfg.endpoint.concurrency_target == 48  # 75% of 2 copies x 32 slots


def test_llama_example_is_cfn_lint_clean(llama_outdir: Path) -> None:
    templates = sorted(llama_outdir.glob("*.template.json"))
    assert len(templates) >= 2
    assert run_cfn_lint(templates) == []


def test_review_says_which_engine_and_options_run_and_why_it_scales(llama_outdir: Path) -> None:
    (llama_outdir / "cfn-lint.json").write_text("[]")
    text = build_review(load_config("llama3-8b", EXAMPLES), llama_outdir, None)
    engine = text.split("## Engine", 1)[1].split("## Scaling", 1)[0]
    assert "Engine `lmi`: vLLM on the Large Model Inference container (rolling batch mode)" in engine
    assert "djl-inference:0.36.0-lmi18.0.0-cu128" in engine
    assert "tensor parallel over 1 of 1 GPU(s)" in engine
    assert "`OPTION_MAX_MODEL_LEN=8192`" in engine and "`OPTION_ENABLE_PREFIX_CACHING=true`" in engine
    assert "uncompressed prefix" in engine
    scaling = text.split("## Scaling", 1)[1].split("## Monthly", 1)[0]
    assert "TargetValue 3000 SageMakerVariantInvocationsPerInstance" in scaling
    assert "Also tracks 24 concurrent requests per instance" in scaling
    assert "75% of the 32 rolling-batch slots" in scaling
    assert "0 unacknowledged findings" in text


def test_prod_synthesizes_with_the_engine_override() -> None:
    """`make synth ENV=prod ENGINE=lmi`: the same prod config, served by vLLM."""
    cfg = with_engine(load_config("prod"), "lmi")
    built = build_app(cfg, nag=False)
    assert built.endpoint is not None
    env = only(Template.from_stack(built.endpoint), "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"][
        "Environment"
    ]
    assert env["OPTION_ROLLING_BATCH"] == "vllm"
    assert env["OPTION_DTYPE"] == "fp16"  # prod's model.dtype reaches the container


def test_volume_is_sized_for_the_model_where_the_instance_has_no_nvme() -> None:
    """ml.p3.8xlarge (4 x V100 16 GiB, EBS only): 13B fp16 sharded over 4 GPUs, a volume for the weights twice."""
    data = yaml.safe_load((EXAMPLES / "llama3-8b.yaml").read_text())
    data["model"] |= {"params_billions": 13, "dtype": "fp16"}
    data["endpoint"] |= {"instance_type": "ml.p3.8xlarge", "vpc": {"mode": "none"}}
    built = build_app(parse_config(data), nag=False)
    assert built.endpoint is not None
    t = Template.from_stack(built.endpoint)
    config = only(t, "AWS::SageMaker::EndpointConfig")["Properties"]
    (variant,) = config["ProductionVariants"]
    assert variant["VolumeSizeInGB"] == 62  # ceil(2 x 26 GB) + 10
    assert "KmsKeyId" in config  # EBS volume: encrypted with our key
    env = only(t, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]["Environment"]
    assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"


@pytest.mark.slow
def test_app_entry_point_applies_the_engine_context(tmp_path: Path) -> None:
    """What `cdk synth -c env=dev -c engine=lmi` (make synth ENGINE=lmi) runs: app.py reads the context flag.

    A fresh process, as the CLI starts it: the CLI hands cdk.json's context and the -c flags over in
    CDK_CONTEXT_JSON, and the jsii kernel reads it when it starts.
    """

    def run(engine: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env |= {
            "CDK_OUTDIR": str(tmp_path / engine),
            "CDK_CONTEXT_JSON": json.dumps(cdk_context(env="dev", engine=engine)),
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        }
        return subprocess.run(
            [sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    bad = run("tgi")
    assert bad.returncode == 2
    assert "config/dev.yaml with -c engine=tgi: endpoint.engine: Input should be 'handler' or 'lmi'" in bad.stderr
    good = run("lmi")
    assert good.returncode == 0, good.stderr[-2000:]
    template = json.loads((tmp_path / "lmi" / "llm-dev-endpoint.template.json").read_text())
    (model,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"]
    assert model["Properties"]["PrimaryContainer"]["Environment"]["OPTION_ROLLING_BATCH"] == "vllm"
