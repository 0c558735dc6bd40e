"""QPS-based autoscaling for a SageMaker variant, plus optional concurrency tracking and scheduled windows."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Aws, Duration, TimeZone
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from constructs import Construct

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class ScheduledWindowProps:
    name: str
    start: str
    end: str
    timezone: str
    min_instances: int


@dataclass(frozen=True)
class AutoscalingProps:
    min_instances: int = 2
    max_instances: int = 10
    target_qps_per_instance: float = 50
    scale_out_cooldown_s: int = 60
    scale_in_cooldown_s: int = 600
    concurrency_target: float | None = None
    windows: list[ScheduledWindowProps] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.min_instances <= self.max_instances:
            raise ValueError(f"min_instances/max_instances: need 1 <= {self.min_instances} <= {self.max_instances}")
        if self.target_qps_per_instance <= 0:
            raise ValueError("target_qps_per_instance: must be > 0")

    @property
    def invocations_per_instance_per_minute(self) -> float:
        # SageMakerVariantInvocationsPerInstance is a per-minute sum, so QPS x 60.
        return self.target_qps_per_instance * 60


class EndpointAutoscaling(Construct):
    """Scale the variant between min and max instances on invocations per instance (and optionally concurrency)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, endpoint_name: str, variant_name: str, props: AutoscalingProps
    ) -> None:
        super().__init__(scope, construct_id)
        self.resource_id = f"endpoint/{endpoint_name}/variant/{variant_name}"
        # Application Auto Scaling acts through its SageMaker service-linked role; naming it stops CDK from
        # creating an unused role of its own.
        service_linked_role = iam.Role.from_role_arn(
            self,
            "ServiceLinkedRole",
            f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/"
            "sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
        )
        self.target = appscaling.ScalableTarget(
            self,
            "Target",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=self.resource_id,
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=props.min_instances,
            max_capacity=props.max_instances,
            role=service_linked_role,
        )
        self.target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=props.invocations_per_instance_per_minute,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_out_cooldown=Duration.seconds(props.scale_out_cooldown_s),
            scale_in_cooldown=Duration.seconds(props.scale_in_cooldown_s),
        )
        if props.concurrency_target is not None:
            # 10-second metric: reacts to long LLM generations that keep QPS low but instances busy.
            self.target.scale_to_track_metric(
                "ConcurrentRequestsPerModel",
                target_value=props.concurrency_target,
                predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_CONCURRENT_REQUESTS_PER_MODEL_HIGH_RESOLUTION,
                scale_out_cooldown=Duration.seconds(props.scale_out_cooldown_s),
                scale_in_cooldown=Duration.seconds(props.scale_in_cooldown_s),
            )
        for w in props.windows:
            tz = TimeZone.of(w.timezone)
            self.target.scale_on_schedule(
                f"{w.name}-start",
                schedule=appscaling.Schedule.expression(w.start),
                min_capacity=w.min_instances,
                max_capacity=props.max_instances,
                time_zone=tz,
            )
            self.target.scale_on_schedule(
                f"{w.name}-end",
                schedule=appscaling.Schedule.expression(w.end),
                min_capacity=props.min_instances,
                max_capacity=props.max_instances,
                time_zone=tz,
            )
