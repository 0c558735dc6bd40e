"""Stack: the SageMaker endpoint with its network, autoscaling and observability (composition only)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from config import DeploymentConfig
from config.instances import instance_table
from stacks.artifacts_stack import import_artifacts
from stacks.constructs.autoscaling import AutoscalingProps, EndpointAutoscaling, ScheduledWindowProps
from stacks.constructs.endpoint import EndpointProps, SageMakerEndpoint
from stacks.constructs.network import NetworkProps, PrivateNetwork
from stacks.constructs.observability import EndpointObservability, ObservabilityProps
from stacks.container_env import container_environment
from stacks.image import resolve_image


class EndpointStack(Stack):
    """Composes the endpoint; the artifact bucket comes from :class:`ArtifactsStack`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        storage = import_artifacts(self, config.environment)
        ep = config.endpoint
        instance = instance_table().instances[ep.instance_type]
        # One key for operational data of this stack: alarm topic and VPC flow logs.
        self.ops_key = kms.Key(
            self,
            "OpsKey",
            description=f"{config.endpoint_name}: alarm topic and flow logs",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        network = None
        if ep.vpc.mode != "none":
            network = PrivateNetwork(
                self,
                "Network",
                props=NetworkProps(
                    mode=ep.vpc.mode,
                    cidr=ep.vpc.cidr,
                    vpc_id=ep.vpc.vpc_id,
                    subnet_ids=list(ep.vpc.subnet_ids),
                    availability_zones=list(ep.vpc.availability_zones),
                ),
                key=self.ops_key,
            )
        image = resolve_image(self, ep.image.uri, ep.image_repository, ep.image_tag)
        self.endpoint = SageMakerEndpoint(
            self,
            "Endpoint",
            props=EndpointProps(
                endpoint_name=config.endpoint_name,
                model_name=config.model.name,
                model_s3_key=config.model.s3_key,
                model_s3_prefix=config.model.s3_prefix,
                instance_type=ep.instance_type,
                instance_has_nvme=instance.nvme,
                variant_name=ep.variant_name,
                initial_instances=ep.min_instances,
                environment=container_environment(config),
                model_uncompressed=config.model.uncompressed,
                engine=ep.engine,
                volume_size_gb=config.volume_size_gb,
                health_check_timeout_s=config.health_check_timeout_s,
                model_download_timeout_s=config.model_download_timeout_s,
                data_capture=ep.data_capture.enabled,
                data_capture_sampling_percent=ep.data_capture.sampling_percent,
                capture_input=ep.data_capture.capture_input,
                capture_output=ep.data_capture.capture_output,
                network_isolation=ep.vpc.network_isolation,
            ),
            storage=storage,
            image=image,
            vpc_subnets=network.subnet_ids if network else None,
            security_group=network.security_group if network else None,
        )
        self.autoscaling = EndpointAutoscaling(
            self,
            "Autoscaling",
            endpoint_name=config.endpoint_name,
            variant_name=ep.variant_name,
            props=AutoscalingProps(
                min_instances=ep.min_instances,
                max_instances=ep.max_instances,
                target_qps_per_instance=ep.target_qps_per_instance,
                scale_out_cooldown_s=ep.scale_out_cooldown_s,
                scale_in_cooldown_s=ep.scale_in_cooldown_s,
                concurrency_target=ep.concurrency_target if ep.concurrency_enabled else None,
                windows=[
                    ScheduledWindowProps(w.name, w.start, w.end, w.timezone, w.min_instances)
                    for w in ep.scheduled_scaling
                ],
            ),
        )
        self.autoscaling.target.node.add_dependency(self.endpoint.endpoint)
        self.observability = EndpointObservability(
            self,
            "Observability",
            props=ObservabilityProps(
                endpoint_name=config.endpoint_name,
                variant_name=ep.variant_name,
                max_instances=ep.max_instances,
                target_invocations_per_instance=ep.target_invocations_per_instance_per_minute,
                p99_model_latency_ms=ep.alarms.p99_model_latency_ms,
                errors_5xx_per_5min=ep.alarms.errors_5xx_per_5min,
                at_max_capacity_minutes=ep.alarms.at_max_capacity_minutes,
                emails=list(ep.alarms.email),
            ),
            key=self.ops_key,
        )
        CfnOutput(self, "EndpointName", value=config.endpoint_name)
        CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)
