"""A KMS-encrypted SNS topic that CloudWatch alarms notify, and the alarm shape every stack uses."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct


class AlarmTopic(Construct):
    """SNS topic encrypted with ``key`` (CloudWatch may use the key to publish), SSL-only, e-mail subscribers."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, display_name: str, emails: Iterable[str]):
        super().__init__(scope, construct_id)
        key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        self.topic = sns.Topic(self, "Topic", display_name=display_name, master_key=key, enforce_ssl=True)
        for email in emails:
            self.topic.add_subscription(subs.EmailSubscription(email))

    def notify(self, *alarms: cw.Alarm, ok: bool = False) -> None:
        """Send these alarms (and, with ``ok``, their recovery) to the topic."""
        action = cw_actions.SnsAction(self.topic)
        for alarm in alarms:
            alarm.add_alarm_action(action)
            if ok:
                alarm.add_ok_action(action)


def threshold_alarm(
    scope: Construct,
    construct_id: str,
    *,
    description: str,
    metric: cw.IMetric,
    threshold: float,
    evaluation_periods: int = 1,
    comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
) -> cw.Alarm:
    """An alarm that stays quiet when the metric has no data (an idle endpoint or function is not an incident)."""
    return cw.Alarm(
        scope,
        construct_id,
        alarm_description=description,
        metric=metric,
        threshold=threshold,
        evaluation_periods=evaluation_periods,
        comparison_operator=comparison,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
    )
