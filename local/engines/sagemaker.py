"""A SageMaker endpoint as a gateway engine, so on-prem clients get OpenAI answers (and SSE) from the cloud model.

Requests go through boto3's ``sagemaker-runtime`` (credentials from the standard chain: environment, profile, SSO,
instance/role credentials; ``base_url`` optionally names the runtime URL of a VPC interface endpoint):

- chat: the OpenAI body (``messages``, ``max_tokens``, sampling) to ``/invocations``; LMI applies the model's chat
  template and answers an OpenAI ``chat.completion`` (or, streaming, ``chat.completion.chunk`` lines);
- completions: the standard schema ``{"inputs", "parameters"}`` that both engines' containers accept.

``stream: true`` uses InvokeEndpointWithResponseStream: an ``lmi`` endpoint sends tokens as vLLM makes them, which
are re-framed as OpenAI SSE chunks here; a ``handler`` endpoint buffers (its toolkit returns whole answers), so its
stream is one chunk with the whole text. boto3 is blocking: each call (and each stream event) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from config.local_section import EngineSpec
from inference.invoke import EndpointClient, InvokeError, StreamPiece, stream_piece
from local.engines.base import SSE_DONE, Call, Engine, Result, chat_messages
from local.errors import EngineError, UpstreamRejected
from local.protocol import ChatCompletionRequest, CompletionRequest
from wire import build, sse
from wire.errors import error_body, error_type

_END = object()


def _close(events: Iterator[dict[str, Any]]) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        close()


class SageMakerEngine(Engine):
    """One SageMaker real-time endpoint (``kind: sagemaker``)."""

    def __init__(self, spec: EngineSpec, client: Any = None) -> None:
        """Args: spec: the engine's config; client: a boto3 sagemaker-runtime client to use (tests)."""
        super().__init__(spec)
        assert spec.endpoint_name is not None
        self._client_override = client
        self._endpoint: EndpointClient | None = None

    @property
    def endpoint(self) -> EndpointClient:
        if self._endpoint is None:
            raise EngineError(self.name, 503, "not started")
        return self._endpoint

    async def start(self) -> None:
        spec = self.spec
        assert spec.endpoint_name is not None
        self._endpoint = await asyncio.to_thread(
            EndpointClient,
            spec.endpoint_name,
            region=spec.region,
            endpoint_url=spec.base_url,
            timeout_s=spec.read_timeout_s,
            connect_timeout_s=spec.connect_timeout_s,
            # One attempt: the gateway's router fails over and its breaker counts failures.
            max_attempts=1,
            client=self._client_override,
            engine=spec.endpoint_engine,
        )

    async def close(self) -> None:
        self._endpoint = None

    async def ready(self) -> bool:
        """Configured and started. sagemaker-runtime has no health call; failures open the breaker instead."""
        return self._endpoint is not None

    # -- request / answer translation ----------------------------------------------------------------------------

    def payload(self, call: Call) -> dict[str, Any]:
        """The body the endpoint gets for an OpenAI request (``stream`` is added by the client for lmi)."""
        req = call.request
        if isinstance(req, ChatCompletionRequest):
            body: dict[str, Any] = {"messages": chat_messages(call), "max_tokens": call.max_tokens}
            for name in ("temperature", "top_p", "seed"):
                if getattr(req, name) is not None:
                    body[name] = getattr(req, name)
            if req.stop is not None:
                body["stop"] = req.stop_list()
            return body
        assert isinstance(req, CompletionRequest)
        params: dict[str, Any] = {"max_new_tokens": call.max_tokens}
        for name in ("temperature", "top_p", "seed"):
            if getattr(req, name) is not None:
                params[name] = getattr(req, name)
        if req.stop is not None:
            params["stop"] = req.stop_list()
        if self.spec.endpoint_engine == "lmi":
            params["details"] = True  # LMI reports finish_reason and token counts only when asked
        return {"inputs": req.prompt_text(), "parameters": params}

    def _error(self, err: InvokeError) -> EngineError | UpstreamRejected:
        """A 4xx from the container goes to the client as is; anything else may fail over."""
        if err.status is not None and 400 <= err.status < 500 and err.status != 429 and err.code == "ModelError":
            return UpstreamRejected(err.status, error_body(str(err), error_type(err.status), None, "upstream_rejected"))
        if err.code == "Timeout":
            return EngineError(self.name, 504, str(err), "upstream_timeout")
        if err.code in ("ConnectionError", "NoCredentials"):
            return EngineError(self.name, 503, str(err), "upstream_unreachable")
        if err.status in (429, 503) or err.code in ("ThrottlingException", "ModelNotReadyException"):
            return EngineError(self.name, 503, str(err), "upstream_unavailable")
        return EngineError(self.name, 502, str(err), "upstream_error")

    async def complete(self, call: Call) -> Result:
        try:
            data = await asyncio.to_thread(self.endpoint.invoke_json, self.payload(call))
            piece = stream_piece(data)
        except InvokeError as err:
            raise self._error(err) from err
        p, c = piece.prompt_tokens or 0, piece.completion_tokens or 0
        body = build.full_response(call.kind, call.model, piece.text, piece.finish_reason, p, c)
        return Result(orjson.dumps(body), piece.text, piece.finish_reason, p, c)

    async def stream(self, call: Call) -> AsyncIterator[bytes]:
        events: Iterator[dict[str, Any]] = self.endpoint.stream_events(self.payload(call))
        # One thread per stream runs every blocking step, so the final close() waits for a read still in flight
        # (a client that leaves mid-token cancels this coroutine, not the read) and then closes the connection.
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sagemaker-{self.name}")
        loop = asyncio.get_running_loop()
        rid, first, pieces, last = build.new_id(call.kind), True, 0, StreamPiece()
        include_usage = bool(call.request.stream_options and call.request.stream_options.include_usage)
        try:
            while True:
                obj = await loop.run_in_executor(worker, next, events, _END)
                if obj is _END:
                    break
                assert isinstance(obj, dict)
                piece = stream_piece(obj)
                if piece.text or first:
                    yield sse.event(build.chunk(call.kind, rid, call.model, piece.text, first=first))
                    first, pieces = False, pieces + 1
                if piece.finish_reason or piece.completion_tokens is not None:
                    last = piece
        except InvokeError as err:
            e = self._error(err)
            if first:
                raise e from None
            reason = e.reason if isinstance(e, EngineError) else str(err)
            yield sse.error_event(f"engine {self.name!r} failed mid-stream: {reason}", code="upstream_error")
            return
        finally:
            # Close the response stream when the client went away (or anything failed) before the end; queued
            # behind any read in flight, and not awaited, so a cancelled request does not wait for the next token.
            worker.submit(_close, events)
            worker.shutdown(wait=False)
        finish = last.finish_reason or "stop"
        p = last.prompt_tokens or 0
        c = last.completion_tokens if last.completion_tokens is not None else pieces
        call.prompt_tokens, call.completion_tokens = p, c
        yield sse.event(build.chunk(call.kind, rid, call.model, None if call.kind == "chat" else "", finish))
        if include_usage:
            yield sse.event(build.chunk(call.kind, rid, call.model, None, usage_=build.usage(p, c)))
        yield SSE_DONE
