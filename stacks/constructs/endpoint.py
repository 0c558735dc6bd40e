"""SageMaker model + endpoint config + endpoint, with a least-privilege execution role."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Annotations, ArnFormat, Aws, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sm
from constructs import Construct

from stacks.constructs.artifact_storage import ArtifactRefs
from stacks.image import ContainerImage
from stacks.nag import acknowledge

INVOKE_ACTIONS = ("sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream")
DATA_CAPTURE_PREFIX = "data-capture/"


@dataclass(frozen=True)
class EndpointProps:
    """Everything the endpoint needs, already validated by the typed config."""

    endpoint_name: str
    model_name: str
    model_s3_key: str
    model_s3_prefix: str
    instance_type: str
    instance_has_nvme: bool
    variant_name: str = "AllTraffic"
    initial_instances: int = 2
    # The container's whole environment, generated from the typed config (stacks/container_env.py).
    environment: dict[str, str] = field(default_factory=dict)
    # model_s3_key is a prefix of uncompressed weights (ModelDataSource) rather than a model.tar.gz (ModelDataUrl).
    model_uncompressed: bool = False
    engine: str = "handler"
    # ML storage volume in GB; None on instances with local NVMe (SageMaker rejects it there).
    volume_size_gb: int | None = None
    health_check_timeout_s: int = 600
    model_download_timeout_s: int = 600
    data_capture: bool = False
    data_capture_sampling_percent: int = 20
    capture_input: bool = True
    capture_output: bool = True
    network_isolation: bool = True

    def __post_init__(self) -> None:
        if not self.instance_type.startswith("ml."):
            raise ValueError(f"instance_type {self.instance_type!r}: expected an ml.* type")
        if self.model_uncompressed != self.model_s3_key.endswith("/"):
            raise ValueError(f"model_s3_key {self.model_s3_key!r}: a prefix ends in '/', a tarball in .tar.gz")
        if not self.model_s3_key.startswith(self.model_s3_prefix):
            raise ValueError(
                f"model_s3_key {self.model_s3_key!r}: must be under the role's readable prefix {self.model_s3_prefix!r}"
            )
        if self.initial_instances < 1:
            raise ValueError("initial_instances: must be >= 1")


class SageMakerEndpoint(Construct):
    """A real-time endpoint. Other stacks get access through :meth:`grant_invoke`, never the role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: EndpointProps,
        storage: ArtifactRefs,
        image: ContainerImage,
        vpc_subnets: list[str] | None = None,
        security_group: ec2.ISecurityGroup | None = None,
        volume_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        self.endpoint_name = props.endpoint_name
        self.variant_name = props.variant_name
        stack = Stack.of(self)
        self.endpoint_arn = stack.format_arn(
            service="sagemaker", resource="endpoint", resource_name=props.endpoint_name
        )

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Execution role of SageMaker endpoint {props.endpoint_name} (reads only its model prefix)",
        )
        # A customer-managed policy (not an inline one) so reviewers see one versioned document per role.
        self.policy = iam.ManagedPolicy(
            self, "ExecutionPolicy", roles=[self.role], description=f"{props.endpoint_name} execution permissions"
        )
        self.policy.add_statements(*storage.read_prefix_statements(props.model_s3_prefix))
        acknowledge(
            self.policy,
            f"AwsSolutions-IAM5[Resource::{storage.arn_label}/{props.model_s3_prefix}*]",
            "The role reads only objects under its own model's prefix (models/<name>/<sha256>/model.tar.gz, "
            "one folder per uploaded version), nothing else in the bucket.",
        )
        if props.model_uncompressed:
            # Copying an uncompressed prefix lists it first; the listing is limited to the model's own prefix.
            self.policy.add_statements(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[storage.bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{props.model_s3_key}*"]}},
                )
            )
        self.policy.add_statements(*image.pull_statements())
        self._grant_logs_and_metrics(stack)
        if props.data_capture:
            capture_prefix = f"{DATA_CAPTURE_PREFIX}{props.endpoint_name}/"
            self.policy.add_statements(*storage.write_prefix_statements(capture_prefix))
            acknowledge(
                self.policy,
                f"AwsSolutions-IAM5[Resource::{storage.arn_label}/{capture_prefix}*]",
                "SageMaker data capture writes one object per captured batch with generated names; the grant is "
                "limited to this endpoint's own data-capture prefix.",
            )
        if vpc_subnets:
            self._grant_vpc_access()
        model_uri = f"s3://{storage.bucket.bucket_name}/{props.model_s3_key}"
        container = sm.CfnModel.ContainerDefinitionProperty(
            image=image.image_uri,
            # A model.tar.gz is unpacked into /opt/ml/model; a prefix is copied there object by object, uncompressed
            # (faster for multi-GiB weights: no single-stream gunzip).
            model_data_url=None if props.model_uncompressed else model_uri,
            model_data_source=(
                sm.CfnModel.ModelDataSourceProperty(
                    s3_data_source=sm.CfnModel.S3DataSourceProperty(
                        s3_uri=model_uri, s3_data_type="S3Prefix", compression_type="None"
                    )
                )
                if props.model_uncompressed
                else None
            ),
            environment={**props.environment, "SAGEMAKER_REGION": Aws.REGION},
        )
        vpc_config = (
            sm.CfnModel.VpcConfigProperty(security_group_ids=[security_group.security_group_id], subnets=vpc_subnets)
            if vpc_subnets and security_group
            else None
        )
        self.model = sm.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=container,
            vpc_config=vpc_config,
            enable_network_isolation=props.network_isolation,
        )
        if props.network_isolation and props.engine == "handler":
            Annotations.of(self).add_info(
                "Network isolation is on: the container cannot pip-install code/requirements.txt, so build the "
                "package with `make package ... WHEELS=<dir>` (docs/PACKAGING.md) or use an image that has them."
            )
        # The role's policy must exist before SageMaker validates the model against it.
        self.model.node.add_dependency(self.policy)

        variant = sm.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=props.variant_name,
            model_name=self.model.attr_model_name,
            instance_type=props.instance_type,
            initial_instance_count=props.initial_instances,
            initial_variant_weight=1.0,
            container_startup_health_check_timeout_in_seconds=props.health_check_timeout_s,
            model_data_download_timeout_in_seconds=props.model_download_timeout_s,
            volume_size_in_gb=props.volume_size_gb,
        )
        data_capture = None
        if props.data_capture:
            modes = [m for m, on in (("Input", props.capture_input), ("Output", props.capture_output)) if on]
            data_capture = sm.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=True,
                initial_sampling_percentage=props.data_capture_sampling_percent,
                destination_s3_uri=f"s3://{storage.bucket.bucket_name}/{DATA_CAPTURE_PREFIX}{props.endpoint_name}",
                kms_key_id=storage.key.key_arn,
                capture_options=[sm.CfnEndpointConfig.CaptureOptionProperty(capture_mode=m) for m in modes],
                capture_content_type_header=sm.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                    json_content_types=["application/json"]
                ),
            )
        # SageMaker rejects KmsKeyId for instance types with local NVMe storage (instance store is hardware
        # encrypted); everywhere else the ML volume is encrypted with our key.
        use_volume_key = not props.instance_has_nvme
        self.endpoint_config = sm.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[variant],
            kms_key_id=(volume_key or storage.key).key_arn if use_volume_key else None,
            data_capture_config=data_capture,
        )
        if not use_volume_key:
            for rule in (
                "HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured",
                "AwsSolutions-SM2",
            ):
                acknowledge(
                    self.endpoint_config,
                    rule,
                    f"{props.instance_type} has local NVMe instance storage, which is encrypted by the hardware; "
                    "SageMaker rejects KmsKeyId for such instance types.",
                )
        self.endpoint = sm.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=props.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            # Without this every deploy resets DesiredInstanceCount to the initial count, undoing autoscaling.
            retain_all_variant_properties=True,
        )

    def _grant_logs_and_metrics(self, stack: Stack) -> None:
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/sagemaker/Endpoints/{self.endpoint_name}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.policy.add_statements(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                resources=[log_group_arn],
            )
        )
        self.policy.add_statements(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{log_group_arn}:log-stream:*"],
            )
        )
        self.policy.add_statements(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints*", "AWS/SageMaker*"]}},
            )
        )
        acknowledge(
            self.policy,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData supports no resource ARNs; it is limited by a cloudwatch:namespace condition "
            "to the SageMaker namespaces. ecr:GetAuthorizationToken and the ec2:Describe* calls for VPC "
            "endpoints likewise accept only '*'.",
        )
        acknowledge(
            self.policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/{self.endpoint_name}:log-stream:*]",
            "Log stream names are created by SageMaker per instance at run time; the grant is limited to this "
            "endpoint's own log group.",
        )

    def _grant_vpc_access(self) -> None:
        self.policy.add_statements(
            iam.PolicyStatement(
                actions=[
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                resources=["*"],
            )
        )

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to invoke this endpoint (and its streaming API) and nothing else."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(INVOKE_ACTIONS), resource_arns=[self.endpoint_arn]
        )
