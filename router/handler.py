"""Lambda entry point: API Gateway HTTP API (payload 2.0) and function URL events carrying OpenAI chat requests.

``lambda_handler`` is thin: it builds one :class:`Router` per execution environment (settings read once) and maps
every error to an OpenAI error body. No prompt text or detected value is ever logged.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from router import complexity, policy
from router.detect import Detector, Finding
from router.errors import BadRequest, NotFound, RouterError, TargetUnavailable
from router.lexicon import shared as shared_lexicon
from router.protocol import ChatRequest, as_sse, decode_body, parse_request
from router.redact import redact, restore
from router.secrets import SecretCache
from router.settings import Settings
from router.targets import CloudTarget, LocalTarget, Target
from router.textview import TextView
from router.tls import GatewayTLS
from wire.breaker import CircuitBreaker
from wire.errors import WireError

LOG = logging.getLogger("router.decision")
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


class Router:
    """Decides and forwards one request at a time; holds the breakers, so build it once per container.

    Args:
        settings: the router settings.
        local: the on-prem target (default: built from settings).
        cloud: the SageMaker target (default: built from settings).
    """

    def __init__(self, settings: Settings, local: Target | None = None, cloud: Target | None = None) -> None:
        self.settings = settings
        self.detector = Detector(settings.custom_patterns, settings.custom_keywords)
        self.model = complexity.Model.load()
        self.targets: dict[str, Target] = {
            "local": local
            or LocalTarget(
                settings.local_url,
                SecretCache(settings.local_secret_arn),
                settings.local_timeout_s,
                tls=GatewayTLS.from_arns(settings.local_ca_secret_arn, settings.local_client_cert_secret_arn),
            ),
            "cloud": cloud
            or CloudTarget(settings.sagemaker_endpoint, settings.cloud_timeout_s, settings.default_max_tokens),
        }
        self.breakers = {
            name: CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s) for name in self.targets
        }

    def decide(
        self, req: ChatRequest, caller: str | None = None, hint: str | None = None
    ) -> tuple[policy.Decision, list[list[Finding]]]:
        """The routing decision for a parsed request, and the findings of each of its texts."""
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

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """Answer one Lambda event with an HTTP response (never raises)."""
        started = time.perf_counter()
        log: dict[str, Any] = {"event": "route"}
        try:
            _check_route(event)
            req = parse_request(decode_body(event, self.settings.max_body_bytes))
            headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
            hint = self._hint(headers)
            caller = _caller(event)
            decision, findings = self.decide(req, caller, hint)
            log |= {
                "reason": decision.reason,
                "types": list(decision.sensitive_types),
                "score": round(decision.score, 4),
            }
            log["decision_us"] = round((time.perf_counter() - started) * 1e6)
            answer, used, reason = self._forward(req, decision, findings)
            log |= {"target": used, "reason": reason}
            body = as_sse(answer) if req.stream else json.dumps(answer, ensure_ascii=False)
            ctype = "text/event-stream" if req.stream else "application/json"
            return _response(200, body, ctype, {"x-route-target": used, "x-route-reason": reason})
        except WireError as err:
            log |= {"status": err.status, "error": err.code or err.type}
            extra = {"x-route-target": "none", "x-route-reason": log.get("reason", err.code or "error")}
            return _response(err.status, err.body().decode(), "application/json", extra)
        except Exception as exc:  # a bug: answer a well-formed 500; log the type only (messages may hold values)
            log |= {"status": 500, "error": type(exc).__name__}
            internal = RouterError("internal error in the router", code="internal_error")
            return _response(
                500,
                internal.body().decode(),
                "application/json",
                {"x-route-target": "none", "x-route-reason": "internal_error"},
            )
        finally:
            log["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            LOG.info(json.dumps(log, separators=(",", ":")))

    def _hint(self, headers: dict[str, str]) -> str | None:
        hint = headers.get("x-route")
        if hint is None or not self.settings.allow_route_hint:
            return None
        hint = hint.strip().lower()
        if hint not in ("local", "cloud"):
            raise BadRequest("x-route header: expected local or cloud", param="x-route", code="invalid_value")
        return hint

    def _forward(
        self, req: ChatRequest, decision: policy.Decision, findings: list[list[Finding]]
    ) -> tuple[dict[str, Any], str, str]:
        order = [decision.target] + ([decision.fallback] if decision.fallback else [])
        last: TargetUnavailable | None = None
        for i, name in enumerate(order):
            breaker = self.breakers[name]
            if not breaker.allow():
                last = TargetUnavailable(f"{name} target skipped: circuit breaker open", code=f"{name}_breaker_open")
                continue
            body, mapping = req.body, dict[str, str]()
            if name == "cloud":
                texts = req.texts
                if decision.redact_for_cloud:
                    texts, mapping = redact(req.texts, findings)
                    if any(self.detector.scan(t) for t in texts):
                        # Redaction left something detection still finds (a value seen only in a disguised form):
                        # fail closed rather than send it.
                        last = TargetUnavailable(
                            "cloud target skipped: redaction incomplete", code="redaction_incomplete"
                        )
                        continue
                body = req.cloud_body(texts)
            try:
                answer = self.targets[name].complete(body)
            except TargetUnavailable as exc:
                breaker.failure()
                last = exc
                continue
            breaker.success()
            if isinstance(req.body.get("model"), str):
                answer["model"] = req.body["model"]
            if mapping:
                for choice in answer.get("choices", []):
                    msg = choice.get("message") or {}
                    if isinstance(msg.get("content"), str):
                        msg["content"] = restore(msg["content"], mapping)
            reason = decision.reason if i == 0 else f"{decision.reason};failover"
            return answer, name, reason
        assert last is not None
        if decision.fallback is None and decision.sensitive_types:
            raise TargetUnavailable(
                "the on-prem model is unavailable and this request holds sensitive data, which never goes to the cloud",
                code="local_unavailable_sensitive",
            )
        raise TargetUnavailable(f"no target available: {last.message}", code=last.code)


def _check_route(event: dict[str, Any]) -> None:
    http = (event.get("requestContext") or {}).get("http") or {}
    method = http.get("method", "POST")
    path = event.get("rawPath") or http.get("path") or "/v1/chat/completions"
    if not path.endswith(CHAT_PATHS):
        raise NotFound(f"no route for {path}: use POST /v1/chat/completions", code="not_found")
    if method != "POST":
        raise NotFound(f"{method} is not allowed on {path}: use POST", code="method_not_allowed")


def _caller(event: dict[str, Any]) -> str | None:
    auth = (event.get("requestContext") or {}).get("authorizer") or {}
    iam = auth.get("iam") or {}
    if iam.get("userArn"):
        return str(iam["userArn"])
    claims = (auth.get("jwt") or {}).get("claims") or {}
    return str(claims["sub"]) if claims.get("sub") else None


def _response(status: int, body: str, content_type: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": content_type} | headers,
        "body": body,
        "isBase64Encoded": False,
    }


_ROUTER: Router | None = None


def get_router() -> Router:
    """The container's router, built on first use from the environment."""
    global _ROUTER
    if _ROUTER is None:
        logging.getLogger().setLevel(logging.INFO)
        _ROUTER = Router(Settings.from_env())
    return _ROUTER


def reset() -> None:
    """Forget the container's router (the next event re-reads the environment); for tests and local runs."""
    global _ROUTER
    _ROUTER = None


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point (``router.handler.lambda_handler``)."""
    return get_router().handle(event)
