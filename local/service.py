"""The gateway service: admit (auth + rate limit), parse and validate, route, answer, measure.

Routes in ``local/app.py`` call exactly one method here, so the HTTP layer stays thin.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from config.local_section import EngineSpec
from local.auth import KeyStore
from local.engines.base import Call, Engine, Result
from local.errors import GatewayError, UpstreamRejected, bad_request, error_body
from local.metrics import Metrics
from local.protocol import ChatCompletionRequest, CompletionRequest, GenerateRequest
from local.ratelimit import TokenBuckets
from local.router import Router
from local.settings import GatewaySettings
from local.sse import SSEResponse
from local.structured import compile_schema

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
    """The request body as a JSON object.

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
    """Validate against a protocol model; the first problem becomes a 400 naming the field."""
    try:
        return model.model_validate(obj)
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in e["loc"]) or None
        msg = e["msg"].removeprefix("Value error, ")
        head = msg.split(": ", 1)[0]
        if e["type"] == "value_error" and head.isidentifier():
            # model-level validators start their message with the field they are about
            loc, msg = f"{loc}.{head}" if loc else head, msg.split(": ", 1)[1]
        raise bad_request(f"{loc}: {msg}" if loc else msg, loc) from None


def upstream_rejection(err: UpstreamRejected) -> Response:
    """Pass an engine's 4xx on, in the OpenAI error shape even when the engine's body was not."""
    try:
        data = orjson.loads(err.body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return Response(err.body, status_code=err.status, media_type=JSON)
        message = str(data.get("error") if isinstance(data, dict) and data.get("error") else data)
    except orjson.JSONDecodeError:
        message = err.body[:300].decode(errors="replace")
    return Response(
        error_body(f"engine rejected the request: {message}", "invalid_request_error"),
        status_code=err.status,
        media_type=JSON,
    )


class Gateway:
    """Everything a request goes through; one instance per app."""

    def __init__(self, settings: GatewaySettings, engines: list[Engine] | None = None) -> None:
        local = settings.local
        self.local = local
        self.keys = KeyStore(local, settings.api_key)
        self.buckets = TokenBuckets()
        self.metrics = Metrics()
        self.engines = engines if engines is not None else [build_engine(s) for s in local.resolved_engines()]
        self.router = Router(self.engines, local.breaker, self.metrics, local.structured_retries)

    async def start(self) -> None:
        for e in self.engines:
            await e.start()

    async def close(self) -> None:
        for e in self.engines:
            await e.close()

    def admit(self, authorization: str | None) -> None:
        """Authenticate and spend a rate-limit token (raises 401/429 ``GatewayError``)."""
        key, info = self.keys.authenticate(authorization)
        self.buckets.take(key, info)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Each engine's reachability; ready when every model has a reachable engine."""
        engines = {e.name: await e.ready() for e in self.engines}
        models = {m: any(engines[e.name] for e in es) for m, es in self.router.by_model.items()}
        return all(models.values()), {"engines": engines, "models": models}

    def models_body(self) -> bytes:
        now = int(time.time())
        data = [{"id": m, "object": "model", "created": now, "owned_by": "llm-deploy"} for m in self.router.models]
        return orjson.dumps({"object": "list", "data": data})

    def chat_call(self, raw: bytes) -> Call:
        obj = parse_json(raw)
        req = validate(ChatCompletionRequest, obj)
        schema = req.output_schema()
        if schema is not None:
            compile_schema(schema)
        return Call("chat", req.model, req, obj, raw, req.token_limit(self.local.default_max_tokens), schema)

    def completion_call(self, raw: bytes) -> Call:
        obj = parse_json(raw)
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
        if g.max_tokens is not None:
            body["max_tokens"] = g.max_tokens
        if g.temperature is not None:
            body["temperature"] = g.temperature
        req = validate(CompletionRequest, body)
        return Call(
            "completion", req.model, req, body, orjson.dumps(body), req.token_limit(self.local.default_max_tokens)
        )

    async def answer(self, route: str, call: Call) -> Response:
        """Route the call and build the response (JSON, or SSE when ``stream`` is true)."""
        if not call.stream:
            result = await self.complete(route, call)
            return Response(result.body, media_type=JSON) if isinstance(result, Result) else result
        t0 = time.perf_counter()
        m = self.metrics
        try:
            engine, stream = await self.router.open_stream(call)
        except GatewayError as err:
            m.request(route, "none", call.model, err.status)
            raise
        except UpstreamRejected as err:
            m.request(route, "none", call.model, err.status)
            return upstream_rejection(err)
        m.first_token(engine.name, call.model, time.perf_counter() - t0)
        tracked = self._tracked(route, engine, call, stream, t0)
        return SSEResponse(tracked, headers=SSE_HEADERS)

    async def complete(self, route: str, call: Call) -> Result | Response:
        """A non-streamed answer, or the engine's 4xx passed on as a response."""
        t0 = time.perf_counter()
        m = self.metrics
        m.in_flight.inc()
        try:
            engine, result = await self.router.complete(call)
        except GatewayError as err:
            m.request(route, "none", call.model, err.status)
            raise
        except UpstreamRejected as err:
            m.request(route, "none", call.model, err.status)
            return upstream_rejection(err)
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
