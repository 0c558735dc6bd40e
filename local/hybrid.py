"""The gateway's ``hybrid`` model: the hybrid router's decision, made on-prem (``local.hybrid``, docs/HYBRID.md).

A chat request for ``local.hybrid.model`` is parsed, scanned, scored and decided by the router's own code
(:mod:`router.protocol`, :class:`router.decision.Decider`, settings from the ``router:`` section through the same
``ROUTER_*`` parser the Lambda uses), then carried out with the router's rules (:func:`router.decision.attempts`,
:meth:`~router.decision.Decider.cloud_texts`, :func:`router.decision.exhausted`):

- ``local``: the request as sent, on the engines serving ``local.hybrid.local_model`` (their own failover);
- ``cloud``: only :meth:`router.protocol.ChatRequest.cloud_body` (scanned fields; redacted under
  ``redact_to_cloud``) on the ``local.hybrid.cloud`` SageMaker engine, which no other model reaches.

A sensitive request has no cloud fallback under ``local_only``: when the local engines fail it gets a 503
(``local_unavailable_sensitive``). Every answer carries ``x-route-target`` and ``x-route-reason``; each request adds
one ``router.decision`` log line (types, score, reason, never text) and the ``llm_gateway_hybrid_*`` metrics.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from config.router_section import router_environment
from local.engines.base import Call, Result
from local.errors import GatewayError
from local.protocol import ChatCompletionRequest
from local.router import Router
from router import policy
from router.decision import (
    REASON_HEADER,
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
from router.errors import TargetUnavailable
from router.protocol import ChatRequest, as_sse, parse_request
from router.settings import Settings
from wire.errors import WireError

if TYPE_CHECKING:
    from local.service import Gateway
    from local.settings import GatewaySettings

JSON = "application/json"
# Bodies at least this large are decided in a worker thread, so a big prompt does not hold the event loop.
OFFLOAD_BYTES = 64 * 1024


class HybridRoute:
    """Decides and answers the hybrid model's chat requests.

    Args:
        gateway: the gateway (its local router, metrics and request parsing answer the local side).
        settings: the gateway settings (``local.hybrid`` enabled, ``router:`` for the policy).

    Raises:
        SettingsError: the ``router:`` section does not give valid router settings.
    """

    def __init__(self, gateway: Gateway, settings: GatewaySettings) -> None:
        from local.service import build_engine  # local.service imports this module

        local = settings.local
        spec = local.hybrid
        assert spec.enabled and spec.cloud is not None
        self.gateway = gateway
        self.model = spec.model
        self.local_model = local.hybrid_local_model()
        self.decider = Decider(Settings.from_env(router_environment(settings.router)))
        self.cloud = build_engine(spec.cloud)
        self.cloud_router = Router(
            [self.cloud],
            local.breaker,
            gateway.metrics,
            structured_retries=0,
            request_timeout_s=local.request_timeout_s,
        )

    async def start(self) -> None:
        await self.cloud.start()

    async def close(self) -> None:
        await self.cloud.close()

    async def answer(self, raw: bytes, caller: str | None, hint: str | None) -> Response:
        """Decide and answer one request (JSON, or SSE for ``stream``).

        Args:
            raw: the request body.
            caller: the API key's name (``router.caller_overrides`` keys).
            hint: the ``x-route`` header, if sent.

        Raises:
            WireError: 400 for an invalid request (the router's messages), 503 when no allowed target answered
                (``local_unavailable_sensitive`` for a sensitive request whose local engines are down), each with
                ``x-route-target: none`` and ``x-route-reason``.
        """
        started = time.perf_counter()
        log: dict[str, Any] = {"event": "route", "entry": "gateway"}
        m = self.gateway.metrics
        try:
            if len(raw) >= OFFLOAD_BYTES:
                req, decision, findings = await asyncio.to_thread(self._decide, raw, caller, hint)
            else:
                req, decision, findings = self._decide(raw, caller, hint)
            elapsed = time.perf_counter() - started
            log |= decision_fields(decision)
            log["decision_us"] = round(elapsed * 1e6)
            m.hybrid_decision.observe(elapsed)
            m.sensitive(decision.sensitive_types)
            response, used, reason = await self._forward(req, decision, findings)
            log |= {"target": used, "reason": reason}
            response.headers[TARGET_HEADER] = used
            response.headers[REASON_HEADER] = reason
            m.route(used, reason)
            return response
        except WireError as err:
            reason = log.get("reason", err.code or "error")
            log |= {"status": err.status, "error": err.code or err.type}
            err.headers = {**(err.headers or {}), TARGET_HEADER: "none", REASON_HEADER: reason}
            m.route("none", reason)
            raise
        finally:
            log["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            log_line(log)

    def _decide(
        self, raw: bytes, caller: str | None, hint: str | None
    ) -> tuple[ChatRequest, policy.Decision, list[list[Finding]]]:
        req = parse_request(raw)
        decision, findings = self.decider.decide(req, caller, self.decider.hint(hint))
        return req, decision, findings

    async def _forward(
        self, req: ChatRequest, decision: policy.Decision, findings: list[list[Finding]]
    ) -> tuple[Response, str, str]:
        """Try the decision's targets in order (the router's rules); the answer, the target and the reason."""
        last: TargetUnavailable | None = None
        for i, name in enumerate(attempts(decision)):
            mapping: dict[str, str] = {}
            if name == policy.CLOUD:
                try:
                    texts, mapping = self.decider.cloud_texts(req, decision, findings)
                except TargetUnavailable as exc:
                    last = exc
                    continue
                call, router = self._cloud_call(req, texts), self.cloud_router
            else:
                local_body = orjson.dumps(req.body | {"model": self.local_model})
                call, router = await self.gateway.chat_call(local_body), self.gateway.router
                call.public_model = self.model
            try:
                response = await self._answer(call, router, mapping)
            except GatewayError as err:
                if err.status < 500:
                    raise
                last = TargetUnavailable(err.message, code=err.code)
                continue
            return response, name, route_reason(decision, i)
        raise exhausted(decision, last)

    def _cloud_call(self, req: ChatRequest, texts: list[str]) -> Call:
        """The cloud engine's call, built from the scanned fields only (``ChatRequest.cloud_body``)."""
        from local.service import validate

        body: dict[str, Any] = req.cloud_body(texts) | {"model": self.model, "stream": req.stream}
        options = req.body.get("stream_options")
        if req.stream and isinstance(options, dict) and options.get("include_usage") is True:
            body["stream_options"] = {"include_usage": True}
        request = validate(ChatCompletionRequest, body)  # what a valid request gives always passes; never a 500
        limit = request.token_limit(self.gateway.local.default_max_tokens)
        return Call("chat", self.model, request, body, orjson.dumps(body), limit)

    async def _answer(self, call: Call, router: Router, mapping: dict[str, str]) -> Response:
        """The answer of one target, under the hybrid model's name; placeholders restored (a redacted stream is
        answered whole, then sent as chunks: a placeholder may be split across tokens)."""
        if call.stream and not mapping:
            return await self.gateway.answer("chat", call, router)
        if mapping:
            call.request = call.request.model_copy(update={"stream": False})
        result = await self.gateway.complete("chat", call, router)
        if not isinstance(result, Result):
            return result  # the engine's 4xx, passed on
        answer = orjson.loads(result.body)
        answer["model"] = self.model
        restore_answer(answer, mapping)
        if mapping and isinstance(call.body.get("stream"), bool) and call.body["stream"]:
            return Response(as_sse(answer).encode(), media_type="text/event-stream")
        return Response(orjson.dumps(answer), media_type=JSON)
