"""cdk-nag at every synth: the AwsSolutions and HIPAA Security packs, and one way to acknowledge a finding."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, CfnResource, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks
from constructs import IConstruct

NAG_PACKS = ("AwsSolutions", "HIPAA.Security")


def apply_nag(app: App) -> None:
    """Attach the rule packs to the whole app; unacknowledged findings make synth fail (exit 1)."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    Validations.of(app).add_plugins(HIPAASecurityChecks(app, verbose=True))


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one exact finding (e.g. ``AwsSolutions-IAM5[Action::s3:GetObject*]``) on ``scope``.

    Call it next to the code that causes the finding; the reason lands in the validation report and REVIEW.md.
    """
    if len(reason) < 20:
        raise ValueError(f"acknowledge({finding}): reason must explain why (>= 20 chars), got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=finding, reason=reason))


def checkov_skip(scope: IConstruct, check: str, reason: str) -> None:
    """Acknowledge one checkov check (e.g. ``CKV_AWS_116``) on ``scope``'s CloudFormation resource, with the reason.

    checkov reads ``Metadata.checkov.skip`` of each resource; the reason shows in its report as the comment.
    """
    if len(reason) < 20:
        raise ValueError(f"checkov_skip({check}): reason must explain why (>= 20 chars), got {reason!r}")
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"checkov_skip({check}): {scope.node.path} has no CloudFormation resource")
    current = resource.get_metadata("checkov") or {}
    skips = [s for s in current.get("skip", []) if s["id"] != check] + [{"id": check, "comment": reason}]
    resource.add_metadata("checkov", {**current, "skip": skips})
