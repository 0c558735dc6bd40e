"""The FastAPI app: thin routes over :class:`local.service.Gateway`, every error in the OpenAI error body."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from local.engines.base import Engine
from local.errors import GatewayError, bad_request, error_body, error_response
from local.openapi import openapi_document
from local.service import JSON, Gateway, parse_json
from local.settings import GatewaySettings, load_settings
from local.sse import DisconnectWatch, SSEResponse
from wire.errors import WireError

log = logging.getLogger("local.gateway")
# A body over the limit is still read (and dropped) up to this size, so the client gets the 413 instead of a reset.
DRAIN_LIMIT = 64 * 1024 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes.

    Raises:
        GatewayError: 413 over the limit, 400 for a malformed Content-Length.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise bad_request("Content-Length header is not a number", None, "invalid_header") from None
        if size <= limit:
            return await request.body()
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            if total > DRAIN_LIMIT:
                break
            continue
        chunks.append(chunk)
    if total > limit:
        raise GatewayError(
            413,
            f"request body is {'over ' if total > DRAIN_LIMIT else ''}{total} bytes; the limit is "
            f"local.max_body_bytes={limit}",
            "invalid_request_error",
            None,
            "request_too_large",
        )
    return b"".join(chunks)


async def until_disconnect(request: Request, work: Awaitable[Response]) -> Response:
    """Run ``work``; if the client disconnects first, cancel it (which closes the engine request, so the engine
    stops generating) and answer nothing. A streamed answer takes the watch over for the rest of the stream.

    Called after the body was read: the next ASGI ``receive`` then only returns on disconnect.
    """
    watch = DisconnectWatch(request.receive)
    handed_over = False
    try:
        response = await work
        if isinstance(response, SSEResponse):
            response.watch, handed_over = watch, True
        return response
    except asyncio.CancelledError:
        if not watch.gone:
            raise
        watch.task.uncancel()
        return Response(b"", status_code=499)  # nobody reads it; uvicorn drops it
    finally:
        if not handed_over:
            watch.stop()


def create_app(settings: GatewaySettings | None = None, engines: list[Engine] | None = None) -> FastAPI:
    """Build the gateway app.

    Args:
        settings: resolved settings; read from the config and environment when None.
        engines: engine adapters to use instead of the ones the config names (tests inject fakes' adapters).
    Raises:
        ConfigError: invalid settings or no API key configured.
        SettingsError: ``local.hybrid`` is enabled and the ``router:`` section gives invalid router settings.
    """
    settings = settings or load_settings()
    gw = Gateway(settings, engines)
    limit = settings.local.max_body_bytes

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        log.info("gateway serving models %s with %d API key(s)", gw.router.models, len(gw.keys))
        yield
        await gw.close()

    app = FastAPI(
        title="llm-deploy gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below from local/openapi.py (the routes are plain Starlette routes)
        # The gateway exports its own Prometheus metrics; FastAPI's OpenTelemetry hook would read os.environ on
        # every request (measured ~10% of the per-request CPU) for providers nobody configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.gateway = gw

    @app.exception_handler(WireError)
    async def _gateway_error(_: Request, err: WireError) -> Response:
        return error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, err: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        return Response(
            error_body(str(err.detail), "invalid_request_error", None, code), err.status_code, media_type=JSON
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> Response:
        log.exception("unexpected error")
        return Response(
            error_body("internal error in the gateway", "server_error", None, "internal_error"), 500, media_type=JSON
        )

    # Plain Starlette routes: the handlers take the raw Request, so FastAPI's dependency solving would be pure
    # overhead on the hot path (measured: ~25% of the gateway's CPU per request).
    async def chat(request: Request) -> Response:
        caller = gw.admit(request.headers.get("authorization"))
        raw = await read_body(request, limit)
        obj = parse_json(raw)
        if gw.hybrid is not None and gw.hybrid_model(obj):
            # The hybrid model: the router's policy decides here, on-prem (local/hybrid.py).
            return await until_disconnect(request, gw.hybrid.answer(raw, caller, request.headers.get("x-route")))
        call = await gw.chat_call(raw, obj)
        # Until the answer (or a stream's first event) is ready; then SSEResponse watches for the disconnect.
        return await until_disconnect(request, gw.answer("chat", call))

    async def completions(request: Request) -> Response:
        gw.admit(request.headers.get("authorization"))
        call = gw.completion_call(await read_body(request, limit))
        return await until_disconnect(request, gw.answer("completions", call))

    async def generate(request: Request) -> Response:
        gw.admit(request.headers.get("authorization"))
        return await until_disconnect(request, gw.generate(gw.generate_call(await read_body(request, limit))))

    async def models(request: Request) -> Response:
        gw.admit(request.headers.get("authorization"))
        return Response(gw.models_body(), media_type=JSON)

    async def health(_: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def ready(_: Request) -> Response:
        ok, detail = await gw.readiness()
        return Response(orjson.dumps({"ready": ok, **detail}), 200 if ok else 503, media_type=JSON)

    async def metrics(request: Request) -> Response:
        if settings.local.metrics_require_key:
            gw.keys.authenticate(request.headers.get("authorization"))
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    openapi = orjson.dumps(openapi_document(settings.local.metrics_require_key, settings.local.max_n))

    async def openapi_json(_: Request) -> Response:
        return Response(openapi, media_type=JSON)

    for path, endpoint, method in (
        ("/v1/chat/completions", chat, "POST"),
        ("/v1/completions", completions, "POST"),
        ("/generate", generate, "POST"),
        ("/v1/models", models, "GET"),
        ("/health", health, "GET"),
        ("/ready", ready, "GET"),
        ("/metrics", metrics, "GET"),
        ("/openapi.json", openapi_json, "GET"),
    ):
        app.add_route(path, endpoint, methods=[method])
    return app
