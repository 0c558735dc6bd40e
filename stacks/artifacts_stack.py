"""Stack: model artifact storage (deployed first, so `make upload` has a bucket to write to)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Fn, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config import DeploymentConfig
from stacks.constructs.artifact_storage import ArtifactRefs, ArtifactStorage, ArtifactStorageProps


class ArtifactsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = ArtifactStorage(
            self,
            "Artifacts",
            ArtifactStorageProps(
                noncurrent_version_days=config.storage.noncurrent_version_days,
                access_log_days=config.storage.access_log_days,
            ),
        )
        names = export_names(config.environment)
        CfnOutput(
            self,
            "BucketName",
            value=self.storage.bucket.bucket_name,
            export_name=names.bucket_name,
            description="make upload BUCKET=...",
        )
        CfnOutput(self, "BucketArn", value=self.storage.bucket.bucket_arn, export_name=names.bucket_arn)
        CfnOutput(self, "KeyArn", value=self.storage.key.key_arn, export_name=names.key_arn)


@dataclass(frozen=True)
class ExportNames:
    bucket_name: str
    bucket_arn: str
    key_arn: str


def export_names(environment: str) -> ExportNames:
    """Stable export names: other stacks import by name, so their IAM findings and diffs stay readable."""
    base = f"llm-{environment}-artifacts"
    return ExportNames(f"{base}-bucket-name", f"{base}-bucket-arn", f"{base}-key-arn")


def import_artifacts(scope: Construct, environment: str) -> ArtifactRefs:
    """The artifact bucket and key as seen from another stack (Fn::ImportValue by stable export name)."""
    names = export_names(environment)
    bucket = s3.Bucket.from_bucket_attributes(
        scope,
        "ArtifactsBucket",
        bucket_arn=Fn.import_value(names.bucket_arn),
        bucket_name=Fn.import_value(names.bucket_name),
    )
    key = kms.Key.from_key_arn(scope, "ArtifactsKey", Fn.import_value(names.key_arn))
    return ArtifactRefs(bucket=bucket, key=key, arn_label=names.bucket_arn)
