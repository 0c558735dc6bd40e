"""Alarms (5XX, p99 model latency, at max capacity) to an encrypted SNS topic, and a CloudWatch dashboard."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.constructs.alarm_topic import AlarmTopic, threshold_alarm

NAMESPACE = "AWS/SageMaker"


@dataclass(frozen=True)
class ObservabilityProps:
    endpoint_name: str
    variant_name: str
    max_instances: int
    target_invocations_per_instance: float
    p99_model_latency_ms: float = 5000
    errors_5xx_per_5min: int = 5
    at_max_capacity_minutes: int = 15
    emails: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.p99_model_latency_ms <= 0:
            raise ValueError("p99_model_latency_ms: must be > 0")


class EndpointObservability(Construct):
    """Everything an on-call engineer needs to see and be paged for about one endpoint variant."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ObservabilityProps, key: kms.Key) -> None:
        super().__init__(scope, construct_id)
        dims = {"EndpointName": props.endpoint_name, "VariantName": props.variant_name}
        self.alarm_topic = AlarmTopic(
            self, "AlarmTopic", key=key, display_name=f"{props.endpoint_name} alarms", emails=props.emails
        )
        self.topic = self.alarm_topic.topic

        def metric(name: str, statistic: str, period: Duration = Duration.minutes(1)) -> cw.Metric:
            return cw.Metric(
                namespace=NAMESPACE, metric_name=name, dimensions_map=dims, statistic=statistic, period=period
            )

        invocations = metric("Invocations", "Sum")
        per_instance = metric("InvocationsPerInstance", "Sum")
        # SageMaker publishes no instance-count metric for a variant; Invocations / InvocationsPerInstance is it.
        self.instance_count = cw.MathExpression(
            expression="IF(ipi > 0, inv / ipi, 0)",
            using_metrics={"inv": invocations, "ipi": per_instance},
            label="Instances (Invocations / InvocationsPerInstance)",
            period=Duration.minutes(1),
        )
        errors_5xx = metric("Invocation5XXErrors", "Sum", Duration.minutes(5))
        errors_4xx = metric("Invocation4XXErrors", "Sum", Duration.minutes(5))
        # ModelLatency is reported in microseconds.
        latency_p99 = metric("ModelLatency", "p99", Duration.minutes(5))
        latency_p50 = metric("ModelLatency", "p50", Duration.minutes(5))

        self.alarm_5xx = threshold_alarm(
            self,
            "Errors5xx",
            description=f"{props.endpoint_name}: >= {props.errors_5xx_per_5min} 5XX errors in 5 minutes",
            metric=errors_5xx,
            threshold=props.errors_5xx_per_5min,
        )
        self.alarm_latency = threshold_alarm(
            self,
            "ModelLatencyP99",
            description=f"{props.endpoint_name}: p99 ModelLatency above {props.p99_model_latency_ms:g} ms "
            "for 3 of 3 five-minute periods",
            metric=latency_p99,
            threshold=props.p99_model_latency_ms * 1000,
            evaluation_periods=3,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        self.alarm_max_capacity = threshold_alarm(
            self,
            "AtMaxCapacity",
            description=f"{props.endpoint_name}: running at max capacity ({props.max_instances} instances) "
            f"for {props.at_max_capacity_minutes} minutes; raise max_instances or the quota",
            metric=self.instance_count,
            threshold=props.max_instances - 0.5,
            evaluation_periods=props.at_max_capacity_minutes,
        )
        self.alarm_topic.notify(self.alarm_5xx, self.alarm_latency, self.alarm_max_capacity, ok=True)

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Invocations per minute", left=[invocations], width=12),
            cw.GraphWidget(
                title="Invocations per instance (scaling metric)",
                left=[per_instance],
                left_annotations=[
                    cw.HorizontalAnnotation(value=props.target_invocations_per_instance, label="scale-out target")
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="ModelLatency (µs) p50 / p99", left=[latency_p50, latency_p99], width=12),
            cw.GraphWidget(title="Errors (5 min)", left=[errors_4xx, errors_5xx], width=12),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Instance count",
                left=[self.instance_count],
                left_annotations=[cw.HorizontalAnnotation(value=props.max_instances, label="max")],
                width=12,
            ),
            cw.AlarmStatusWidget(
                title="Alarms", alarms=[self.alarm_5xx, self.alarm_latency, self.alarm_max_capacity], width=12
            ),
        )
