"""Model artifact storage: a customer-managed KMS key, a versioned SSL-only bucket, and its access-log bucket."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.nag import acknowledge


@dataclass(frozen=True)
class ArtifactStorageProps:
    noncurrent_version_days: int = 30
    access_log_days: int = 365
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN

    def __post_init__(self) -> None:
        if self.noncurrent_version_days < 1:
            raise ValueError("noncurrent_version_days: must be >= 1")
        if self.access_log_days < 1:
            raise ValueError("access_log_days: must be >= 1")


class ArtifactStorage(Construct):
    """Where model.tar.gz lives. Exposes ``bucket`` and ``key`` and read grants scoped to a prefix."""

    def __init__(self, scope: Construct, construct_id: str, props: ArtifactStorageProps) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts model artifacts, data capture and endpoint volumes",
            enable_key_rotation=True,
            removal_policy=props.removal_policy,
        )
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            # Server access logs cannot be delivered to a KMS-CMK bucket; SSE-S3 is the supported option.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(props.access_log_days),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=props.removal_policy,
        )
        acknowledge(
            self.log_bucket,
            "AwsSolutions-S1",
            "This is the server-access-log destination itself; logging it to itself would loop.",
        )
        acknowledge(
            self.log_bucket,
            "HIPAA.Security-S3BucketLoggingEnabled",
            "This is the server-access-log destination itself; logging it to itself would loop.",
        )
        acknowledge(
            self.log_bucket,
            "HIPAA.Security-S3DefaultEncryptionKMS",
            "S3 server access logging only delivers to SSE-S3 buckets; SSE-KMS with a CMK is unsupported there.",
        )
        self._ack_replication(self.log_bucket)
        self.bucket = s3.Bucket(
            self,
            "Artifacts",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(props.noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=props.removal_policy,
        )
        self._ack_replication(self.bucket)

    @staticmethod
    def _ack_replication(bucket: s3.Bucket) -> None:
        acknowledge(
            bucket,
            "HIPAA.Security-S3BucketReplicationEnabled",
            "Artifacts are rebuilt deterministically from the source model (make package) and versioned; "
            "cross-region replication is a per-organisation DR decision, not a default.",
        )

    def refs(self) -> ArtifactRefs:
        return ArtifactRefs(bucket=self.bucket, key=self.key)


@dataclass(frozen=True)
class ArtifactRefs:
    """The bucket and key as another stack sees them (imported by exported name, or the constructs themselves)."""

    bucket: s3.IBucket
    key: kms.IKey
    # How cdk-nag prints the bucket ARN in finding ids (the export name when imported).
    arn_label: str = "<bucket>"

    def read_prefix_statements(self, prefix: str) -> list[iam.PolicyStatement]:
        """Read objects under ``prefix`` only, and decrypt them with the key."""
        _check_prefix(prefix)
        return [
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(f"{prefix}*")]),
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[self.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            ),
        ]

    def write_prefix_statements(self, prefix: str) -> list[iam.PolicyStatement]:
        """Write objects under ``prefix`` only (data capture), encrypting them with the key."""
        _check_prefix(prefix)
        return [
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{prefix}*")]),
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"],
                resources=[self.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            ),
        ]


def _check_prefix(prefix: str) -> None:
    if not prefix or prefix == "/" or "*" in prefix or not prefix.endswith("/"):
        raise ValueError(f"prefix: {prefix!r} must name a folder such as 'models/gpt2/'")
