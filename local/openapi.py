"""The gateway's OpenAPI document, generated from the request models of :mod:`local.protocol` (the routes are plain
Starlette routes for speed, so FastAPI cannot see them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from local.protocol import ChatCompletionRequest, CompletionRequest, ErrorResponse, GenerateRequest, GenerateResponse

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "invalid request (the message and param name the field)",
    "401": "missing or invalid API key",
    "404": "unknown model",
    "413": "request body over local.max_body_bytes",
    "429": "rate limit exceeded (Retry-After says when to retry)",
    "502": "the engine failed",
    "503": "no engine available",
    "504": "no answer within the deadline",
}


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in models:
        schema = m.model_json_schema(ref_template=REF)
        out.update(schema.pop("$defs", {}))
        out[m.__name__] = schema
    return out


def _error_responses(*codes: str) -> dict[str, Any]:
    return {
        c: {
            "description": ERRORS[c],
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
        }
        for c in codes
    }


def _post(model: str, summary: str, streams: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if streams:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
            },
            "responses": {
                "200": {"description": "the answer (SSE when stream is true)", "content": content},
                **_error_responses("400", "401", "404", "413", "429", "502", "503", "504"),
            },
        }
    }


def _get(summary: str, secured: bool, codes: tuple[str, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK"}, **_error_responses(*codes)}}
    if secured:
        op["security"] = [{"bearer": []}]
    return {"get": op}


def openapi_document(metrics_secured: bool, max_n: int | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every gateway route (``max_n``: the deployment's ``local.max_n``)."""
    generate = _post("GenerateRequest", "The reference guide's /generate: a completion answered as {text}", False)
    generate["post"]["responses"]["200"] = {
        "description": "the answer",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="GenerateResponse")}}},
    }
    ready = _get("Every configured model has a ready engine", False)
    ready["get"]["responses"]["503"] = {"description": "not ready; the body says which engine and why"}
    schemas = _schemas(ChatCompletionRequest, CompletionRequest, GenerateRequest, GenerateResponse, ErrorResponse)
    if max_n is not None:
        for name in ("ChatCompletionRequest", "CompletionRequest"):
            schemas[name]["properties"]["n"]["maximum"] = max_n
    return {
        "openapi": "3.1.0",
        "info": {"title": "llm-deploy gateway", "version": "1", "description": "OpenAI-compatible on-prem gateway"},
        "paths": {
            "/v1/chat/completions": _post("ChatCompletionRequest", "OpenAI chat completions", True),
            "/v1/completions": _post("CompletionRequest", "OpenAI completions", True),
            "/generate": generate,
            "/v1/models": _get("Served models", True, ("401", "429")),
            "/health": _get("The process is up", False),
            "/ready": ready,
            "/metrics": _get("Prometheus metrics", metrics_secured, ("401",) if metrics_secured else ()),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
