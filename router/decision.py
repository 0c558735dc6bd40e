"""The routing decision and the rules for carrying it out, in one place for both entry points.

The router Lambda (``router/handler.py``) and the on-prem gateway's ``hybrid`` route (``local/hybrid.py``) both build
a :class:`Decider` from the same :class:`~router.settings.Settings` and follow the same steps: :meth:`Decider.decide`,
then :func:`attempts` in order, :meth:`Decider.cloud_texts` before anything goes to the cloud, :func:`route_reason`
for the answer's ``x-route-reason``, :func:`exhausted` when nothing could answer, and :func:`log_line` for the one
decision log line (types, score, reason; never text or values). Standard library only (the Lambda imports it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from router import complexity, policy
from router.detect import Detector, Finding
from router.errors import BadRequest, TargetUnavailable
from router.lexicon import shared as shared_lexicon
from router.protocol import ChatRequest
from router.redact import redact, restore
from router.settings import Settings
from router.textview import TextView

LOG = logging.getLogger("router.decision")
ROUTE_HINT_HEADER = "x-route"
TARGET_HEADER = "x-route-target"
REASON_HEADER = "x-route-reason"


class Decider:
    """Detection, scoring and policy for one set of settings (build once: it loads the detector and the model).

    Args:
        settings: the router settings (the Lambda reads them from ``ROUTER_*``; the gateway from the same
            ``router:`` config section through the same variables).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.detector = Detector(settings.custom_patterns, settings.custom_keywords)
        self.model = complexity.Model.load()

    def decide(
        self, req: ChatRequest, caller: str | None = None, hint: str | None = None
    ) -> tuple[policy.Decision, list[list[Finding]]]:
        """The routing decision for a parsed request, and the findings of each of its texts.

        Args:
            req: the validated request (:func:`router.protocol.parse_request`).
            caller: who sent it (IAM ARN / JWT ``sub`` at the Lambda, the API key's name at the gateway).
            hint: the parsed ``x-route`` header (:meth:`hint`).
        """
        # Each text is prepared once (byte views, one word pass) and read by both detection and scoring.
        views = [TextView.of(t) for t in req.texts]
        lexicon = shared_lexicon()
        words = [lexicon.words(v) for v in views]
        findings = [
            self.detector.scan(v.text, hits=(w.en, w.other), view=v, present=w.present)
            for v, w in zip(views, words, strict=True)
        ]
        user = [i for i, r in enumerate(req.text_roles) if r == "user"] or list(range(len(req.texts)))
        feats = complexity.features(
            [req.texts[i] for i in user],
            depth=len(user),
            words=[words[i] for i in user],
            views=[views[i] for i in user],
        )
        pol, threshold, force = self.settings.for_caller(caller)
        decision = policy.decide(
            sensitive_types=[f.type for fs in findings for f in fs],
            unscannable=req.unscannable,
            score=complexity.score(feats, self.model),
            policy=pol,
            threshold=threshold,
            force_target=force,
            hint=hint,
        )
        return decision, findings

    def hint(self, value: str | None) -> str | None:
        """The ``x-route`` header as a target, or None when absent or not allowed (``allow_route_hint``).

        Raises:
            BadRequest: a value other than ``local`` or ``cloud``.
        """
        if value is None or not self.settings.allow_route_hint:
            return None
        hint = value.strip().lower()
        if hint not in (policy.LOCAL, policy.CLOUD):
            raise BadRequest("x-route header: expected local or cloud", param=ROUTE_HINT_HEADER, code="invalid_value")
        return hint

    def cloud_texts(
        self, req: ChatRequest, decision: policy.Decision, findings: list[list[Finding]]
    ) -> tuple[list[str], dict[str, str]]:
        """The texts the cloud may receive for this request, and the placeholder -> value map to restore.

        Without ``redact_for_cloud`` these are the request's texts as scanned (nothing was found in them); with it,
        each finding is replaced by ``[TYPE_n]`` and the result scanned again.

        Raises:
            TargetUnavailable: the cloud is not allowed for this decision, or redaction left something detection
                still finds (a value seen only in a disguised form): fail closed rather than send it.
        """
        if not decision.cloud_allowed():
            raise TargetUnavailable("the cloud target is not allowed for this request", code="cloud_not_allowed")
        if not decision.redact_for_cloud:
            return req.texts, {}
        texts, mapping = redact(req.texts, findings)
        if any(self.detector.scan(t) for t in texts):
            raise TargetUnavailable("cloud target skipped: redaction incomplete", code="redaction_incomplete")
        return texts, mapping


def attempts(decision: policy.Decision) -> list[str]:
    """The targets to try, in order: the decision's target, then its fallback (if any)."""
    return [decision.target] + ([decision.fallback] if decision.fallback else [])


def route_reason(decision: policy.Decision, attempt: int) -> str:
    """``x-route-reason`` of an answer from the ``attempt``-th target tried (``;failover`` after the first)."""
    return decision.reason if attempt == 0 else f"{decision.reason};failover"


def exhausted(decision: policy.Decision, last: TargetUnavailable | None) -> TargetUnavailable:
    """The 503 to answer when no target could: a sensitive request says it never goes to the cloud."""
    if decision.fallback is None and decision.sensitive_types:
        return TargetUnavailable(
            "the on-prem model is unavailable and this request holds sensitive data, which never goes to the cloud",
            code="local_unavailable_sensitive",
        )
    if last is None:
        return TargetUnavailable("no target available", code="no_target")
    return TargetUnavailable(f"no target available: {last.message}", code=last.code)


def restore_answer(answer: dict[str, Any], mapping: dict[str, str]) -> None:
    """Put the redacted values back into a ``chat.completion``'s message contents (in place)."""
    if not mapping:
        return
    for choice in answer.get("choices", []):
        msg = choice.get("message") or {}
        if isinstance(msg.get("content"), str):
            msg["content"] = restore(msg["content"], mapping)


def decision_fields(decision: policy.Decision) -> dict[str, Any]:
    """What the decision log line says about a decision (types and score, never text or values)."""
    return {"reason": decision.reason, "types": list(decision.sensitive_types), "score": round(decision.score, 4)}


def log_line(fields: dict[str, Any]) -> None:
    """Write the one JSON decision line of a request (logger ``router.decision``)."""
    LOG.info(json.dumps(fields, separators=(",", ":")))
