"""The gateway service: admit (auth + rate limit), parse and validate, route, answer, measure.

Routes in ``local/app.py`` call exactly one method here, so the HTTP layer stays thin. Request rules are
:mod:`wire.validate`'s (the project's one set); the pydantic models of :mod:`local.protocol` give typed access.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from config.local_section import EngineSpec
from local.auth import KeyStore
from local.engines.base import Call, Engine, Result
from local.errors import GatewayError, UpstreamRejected, bad_request
from local.metrics import Metrics
from local.protocol import ChatCompletionRequest, CompletionRequest, GenerateRequest
from local.ratelimit import TokenBuckets
from local.router import Router
from local.settings import GatewaySettings
from local.sse import SSEResponse
from local.structured import compile_schema
from wire import build
from wire import validate as rules
from wire.errors import error_body, parse_error_body

if TYPE_CHECKING:
    from local.hybrid import HybridRoute

M = TypeVar("M", bound=BaseModel)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
JSON = "application/json"


def build_engine(spec: EngineSpec) -> Engine:
    """The adapter for an engine spec."""
    if spec.kind in ("vllm", "sglang"):
        from local.engines.openai_compat import OpenAICompatEngine

        return OpenAICompatEngine(spec)
    if spec.kind == "ollama":
        from local.engines.ollama import OllamaEngine

        return OllamaEngine(spec)
    if spec.kind == "sagemaker":
        from local.engines.sagemaker import SageMakerEngine

        return SageMakerEngine(spec)
    from local.engines.embedded import EmbeddedAdapter

    return EmbeddedAdapter(spec)


def parse_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (orjson: this is the hot path; the messages are wire's).

    Raises:
        GatewayError: 400 for invalid JSON or a non-object body.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise bad_request(f"request body is not valid JSON: {err}", None, "invalid_json") from None
    if not isinstance(obj, dict):
        raise bad_request("request body must be a JSON object", None, "invalid_json")
    return obj


def validate(model: type[M], obj: dict[str, Any]) -> M:
    """Build a protocol model from a body wire has checked; anything it still rejects is a 400 naming the field."""
    try:
        return model.model_validate(obj)
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in e["loc"]) or None
        msg = e["msg"].removeprefix("Value error, ")
        raise bad_request(f"{loc}: {msg}" if loc else msg, loc) from None


def upstream_rejection(err: UpstreamRejected) -> Response:
    """Pass an engine's 4xx on, in the OpenAI error shape even when the engine's body was not."""
    parsed = parse_error_body(err.body)
    if parsed is not None and parsed.get("type") is not None:
        body = err.body
    else:
        message = parsed["message"] if parsed else err.body[:300].decode(errors="replace")
        body = error_body(f"engine rejected the request: {message}", "invalid_request_error")
    return Response(body, status_code=err.status, headers=err.headers, media_type=JSON)


class Gateway:
    """Everything a request goes through; one instance per app."""

    def __init__(self, settings: GatewaySettings, engines: list[Engine] | None = None) -> None:
        local = settings.local
        self.local = local
        self.keys = KeyStore(local, settings.api_key)
        self.buckets = TokenBuckets()
        self.engines = engines if engines is not None else [build_engine(s) for s in local.resolved_engines()]
        hybrid = [local.hybrid.model] if local.hybrid.enabled else []
        self.metrics = Metrics([m for e in self.engines for m in e.spec.models] + hybrid)
        self.router = Router(
            self.engines, local.breaker, self.metrics, local.structured_retries, local.request_timeout_s
        )
        self.limits = rules.Limits(max_n=local.max_n)
        self.hybrid: HybridRoute | None = None
        if local.hybrid.enabled:
            from local.hybrid import HybridRoute

            self.hybrid = HybridRoute(self, settings)

    async def start(self) -> None:
        for e in self.engines:
            await e.start()
        if self.hybrid is not None:
            await self.hybrid.start()

    async def close(self) -> None:
        for e in self.engines:
            await e.close()
        if self.hybrid is not None:
            await self.hybrid.close()

    def admit(self, authorization: str | None) -> str:
        """Authenticate and spend a rate-limit token (raises 401/429 ``GatewayError``).

        Returns:
            The key's name (the caller id of the hybrid route's ``router.caller_overrides``).
        """
        key, info = self.keys.authenticate(authorization)
        self.buckets.take(key, info)
        return info.name

    def hybrid_model(self, obj: dict[str, Any]) -> bool:
        """True when a parsed request names the hybrid model (which only the hybrid route answers)."""
        return self.hybrid is not None and obj.get("model") == self.hybrid.model

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Each engine's readiness (reachable, serving its models, breaker not open); ready when every model has a
        ready engine."""
        checks = await asyncio.gather(*(e.readiness() for e in self.engines))
        engines: dict[str, bool] = {}
        detail: dict[str, str] = {}
        for e, (ok, why) in zip(self.engines, checks, strict=True):
            if ok and self.router.breaker_open(e):
                ok, why = False, "circuit open: failing requests (streams included)"
            engines[e.name], detail[e.name] = ok, why
        models = {m: any(engines[e.name] for e in es) for m, es in self.router.by_model.items()}
        if self.hybrid is not None:
            # The hybrid model answers whenever its local model does (the cloud is where it may go, never a need);
            # the cloud engine is listed for the operator.
            cloud = self.hybrid.cloud
            ok, why = await cloud.readiness()
            if ok and self.hybrid.cloud_router.breaker_open(cloud):
                ok, why = False, "circuit open: failing requests"
            engines[cloud.name], detail[cloud.name] = ok, why
            models[self.hybrid.model] = models.get(self.hybrid.local_model, False)
        return all(models.values()), {"engines": engines, "models": models, "detail": detail}

    def models_body(self) -> bytes:
        info: dict[str, dict[str, Any]] = {}
        for e in self.engines:
            for m, extra in e.model_info().items():
                info.setdefault(m, extra)
        entries: list[dict[str, Any] | str] = [{"id": m, **info.get(m, {})} for m in self.router.models]
        if self.hybrid is not None:
            entries.append({"id": self.hybrid.model})
        return orjson.dumps(build.model_list(entries))

    async def chat_call(self, raw: bytes, obj: dict[str, Any] | None = None) -> Call:
        """A validated chat call (``obj``: the body already parsed from ``raw``, if it was)."""
        obj = parse_json(raw) if obj is None else obj
        rules.chat_request(obj, self.limits)
        req = validate(ChatCompletionRequest, obj)
        schema = req.output_schema()
        if schema is not None:
            # Checking a big schema takes milliseconds: off the event loop, so /health and other streams go on.
            await asyncio.to_thread(compile_schema, schema)
        return Call("chat", req.model, req, obj, raw, req.token_limit(self.local.default_max_tokens), schema)

    def completion_call(self, raw: bytes) -> Call:
        obj = parse_json(raw)
        if self.hybrid_model(obj):
            raise bad_request(
                f"model {obj['model']!r} (the hybrid route) answers /v1/chat/completions only", "model", "invalid_value"
            )
        rules.completion_request(obj, self.limits)
        req = validate(CompletionRequest, obj)
        try:
            req.prompt_text()
        except ValueError as err:
            raise bad_request(str(err), "prompt") from None
        return Call("completion", req.model, req, obj, raw, req.token_limit(self.local.default_max_tokens))

    def generate_call(self, raw: bytes) -> Call:
        """The reference guide's ``{"prompt"}`` as a completion on the first model."""
        g = validate(GenerateRequest, parse_json(raw))
        body: dict[str, Any] = {"model": g.model or self.router.models[0], "prompt": g.prompt}
        body["max_tokens"] = g.max_tokens or self.local.default_max_tokens
        if g.temperature is not None:
            body["temperature"] = g.temperature
        rules.completion_request(body, self.limits)
        req = validate(CompletionRequest, body)
        return Call("completion", req.model, req, body, orjson.dumps(body), body["max_tokens"])

    async def answer(self, route: str, call: Call, router: Router | None = None) -> Response:
        """Route the call and build the response (JSON, or SSE when ``stream`` is true).

        Args:
            route: the metrics' route label.
            call: the validated call.
            router: the engines to route over (default: the gateway's; the hybrid route passes its cloud's).
        """
        router = router or self.router
        if not call.stream:
            result = await self.complete(route, call, router)
            return Response(result.body, media_type=JSON) if isinstance(result, Result) else result
        t0 = time.perf_counter()
        m = self.metrics
        try:
            engine, stream = await router.open_stream(call)
        except GatewayError as err:
            m.request(route, "none", call.model, err.status)
            raise
        except UpstreamRejected as err:
            m.request(route, "none", call.model, err.status)
            return upstream_rejection(err)
        except asyncio.CancelledError:
            m.request(route, "none", call.model, 499)  # gone before the first event; the engine request is closed
            raise
        m.first_token(engine.name, call.model, time.perf_counter() - t0)
        tracked = self._tracked(route, engine, call, stream, t0)
        return SSEResponse(tracked, headers=SSE_HEADERS)

    async def complete(self, route: str, call: Call, router: Router | None = None) -> Result | Response:
        """A non-streamed answer, or the engine's 4xx passed on as a response (``router``: as :meth:`answer`)."""
        t0 = time.perf_counter()
        m = self.metrics
        m.in_flight.inc()
        try:
            engine, result = await (router or self.router).complete(call)
        except GatewayError as err:
            m.request(route, "none", call.model, err.status)
            raise
        except UpstreamRejected as err:
            m.request(route, "none", call.model, err.status)
            return upstream_rejection(err)
        except asyncio.CancelledError:
            m.request(route, "none", call.model, 499)  # the client went away; the upstream request was cancelled
            raise
        finally:
            m.in_flight.dec()
        m.request(route, engine.name, call.model, 200)
        m.observe(engine.name, call.model, time.perf_counter() - t0)
        m.count_tokens(engine.name, call.model, result.prompt_tokens, result.completion_tokens)
        return result

    async def _tracked(
        self, route: str, engine: Engine, call: Call, stream: AsyncIterator[bytes], t0: float
    ) -> AsyncIterator[bytes]:
        m = self.metrics
        m.in_flight.inc()
        status = 200
        try:
            async for chunk in stream:
                yield chunk
        except BaseException:
            status = 499  # the client went away; closing ``stream`` below closes the upstream request
            raise
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
            if call.failure is not None:
                status = call.failure_status
            m.in_flight.dec()
            m.request(route, engine.name, call.model, status)
            m.observe(engine.name, call.model, time.perf_counter() - t0)
            m.count_tokens(engine.name, call.model, call.prompt_tokens, call.completion_tokens)

    async def generate(self, call: Call) -> Response:
        """``/generate``: a completion answered as ``{"text"}``."""
        result = await self.complete("generate", call)
        if not isinstance(result, Result):
            return result
        return Response(orjson.dumps({"text": result.text}), media_type=JSON)
