"""Lambda entry point: API Gateway HTTP API (payload 2.0) and function URL events carrying OpenAI chat requests.

``lambda_handler`` is thin: it builds one :class:`Router` per execution environment (settings read once) and maps
every error to an OpenAI error body. No prompt text or detected value is ever logged.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from router import policy
from router.decision import (
    REASON_HEADER,
    ROUTE_HINT_HEADER,
    TARGET_HEADER,
    Decider,
    attempts,
    decision_fields,
    exhausted,
    log_line,
    restore_answer,
    route_reason,
)
from router.detect import Finding
from router.errors import NotFound, RouterError, TargetUnavailable
from router.protocol import ChatRequest, as_sse, decode_body, parse_request
from router.secrets import SecretCache
from router.settings import Settings
from router.targets import CloudTarget, LocalTarget, Target
from router.tls import GatewayTLS
from wire.breaker import CircuitBreaker
from wire.errors import WireError

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
        self.decider = Decider(settings)
        self.detector = self.decider.detector
        self.model = self.decider.model
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
        return self.decider.decide(req, caller, hint)

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """Answer one Lambda event with an HTTP response (never raises)."""
        started = time.perf_counter()
        log: dict[str, Any] = {"event": "route"}
        try:
            _check_route(event)
            req = parse_request(decode_body(event, self.settings.max_body_bytes))
            headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
            hint = self.decider.hint(headers.get(ROUTE_HINT_HEADER))
            caller = _caller(event)
            decision, findings = self.decide(req, caller, hint)
            log |= decision_fields(decision)
            log["decision_us"] = round((time.perf_counter() - started) * 1e6)
            answer, used, reason = self._forward(req, decision, findings)
            log |= {"target": used, "reason": reason}
            body = as_sse(answer) if req.stream else json.dumps(answer, ensure_ascii=False)
            ctype = "text/event-stream" if req.stream else "application/json"
            return _response(200, body, ctype, {TARGET_HEADER: used, REASON_HEADER: reason})
        except WireError as err:
            log |= {"status": err.status, "error": err.code or err.type}
            extra = {TARGET_HEADER: "none", REASON_HEADER: log.get("reason", err.code or "error")}
            return _response(err.status, err.body().decode(), "application/json", extra)
        except Exception as exc:  # a bug: answer a well-formed 500; log the type only (messages may hold values)
            log |= {"status": 500, "error": type(exc).__name__}
            internal = RouterError("internal error in the router", code="internal_error")
            return _response(
                500,
                internal.body().decode(),
                "application/json",
                {TARGET_HEADER: "none", REASON_HEADER: "internal_error"},
            )
        finally:
            log["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            log_line(log)

    def _forward(
        self, req: ChatRequest, decision: policy.Decision, findings: list[list[Finding]]
    ) -> tuple[dict[str, Any], str, str]:
        last: TargetUnavailable | None = None
        for i, name in enumerate(attempts(decision)):
            breaker = self.breakers[name]
            if not breaker.allow():
                last = TargetUnavailable(f"{name} target skipped: circuit breaker open", code=f"{name}_breaker_open")
                continue
            body, mapping = req.body, dict[str, str]()
            if name == policy.CLOUD:
                try:
                    texts, mapping = self.decider.cloud_texts(req, decision, findings)
                except TargetUnavailable as exc:
                    breaker.release()
                    last = exc
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
            restore_answer(answer, mapping)
            return answer, name, route_reason(decision, i)
        raise exhausted(decision, last)


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
