"""cdk-nag at every synth: the AwsSolutions and HIPAA Security packs, and one way to acknowledge a finding."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
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
