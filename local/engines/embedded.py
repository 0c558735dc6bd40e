"""The embedded transformers engine (``local/embedded/``) behind the same adapter interface as the HTTP engines."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from config.local_section import EngineSpec
from local.embedded.api import EmbeddedEngineProtocol, GenerationChunk, GenerationRequest, TokenLogprob
from local.embedded.errors import EmbeddedEngineError, InvalidRequestError, UnsupportedFieldError
from local.embedded.openai import generation_request, logprobs_json
from local.engines.base import (
    SSE_DONE,
    Call,
    Engine,
    Result,
    chat_messages,
    dumps,
    new_id,
    sse_error,
    sse_event,
    usage,
)
from local.errors import EngineError, GatewayError
from local.protocol import ChatCompletionRequest
from wire import build


def build_embedded_engine(spec: EngineSpec) -> EmbeddedEngineProtocol:
    """Construct the real engine from the config (imported lazily: it pulls in torch and transformers)."""
    from local.embedded.engine import EmbeddedEngine
    from local.embedded.settings import EmbeddedSettings

    wanted = {
        "model_dir": spec.model_dir,
        "device": spec.device,
        "dtype": spec.dtype,
        "max_batch_size": spec.max_batch_size,
        "load_in_4bit": spec.load_in_4bit,
        "cpu_linear_threads": spec.cpu_linear_threads,
        "model_name": spec.models[0],
        "max_input_tokens": spec.max_input_tokens,
        "max_new_tokens_limit": spec.max_new_tokens,
    }
    fields = getattr(EmbeddedSettings, "model_fields", wanted)
    engine: EmbeddedEngineProtocol = EmbeddedEngine(
        EmbeddedSettings(**{k: v for k, v in wanted.items() if k in fields})
    )
    return engine


class EmbeddedAdapter(Engine):
    """Turns OpenAI requests into ``GenerationRequest`` and engine chunks into OpenAI JSON / SSE."""

    def __init__(self, spec: EngineSpec, engine: EmbeddedEngineProtocol | None = None) -> None:
        super().__init__(spec)
        self._engine = engine

    @property
    def engine(self) -> EmbeddedEngineProtocol:
        if self._engine is None:
            raise EngineError(self.name, 503, "embedded engine not loaded")
        return self._engine

    async def start(self) -> None:
        if self._engine is None:
            self._engine = build_embedded_engine(self.spec)
        await self._engine.start()

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.stop()

    async def ready(self) -> bool:
        return self._engine is not None and self._engine.ready()

    @staticmethod
    def generation_request(call: Call) -> GenerationRequest:
        """The engine's request for an OpenAI request (the core decides what it honours and what it refuses).

        Raises:
            InvalidRequestError: a field the engine reads is malformed; ``UnsupportedFieldError`` for a field it
                cannot honour (tools, echo, image parts, ...).
        """
        messages = chat_messages(call) if isinstance(call.request, ChatCompletionRequest) else None
        return generation_request(call.body, call.kind, call.max_tokens, messages)

    async def _chunks(self, call: Call) -> AsyncGenerator[GenerationChunk, None]:
        inner: AsyncIterator[GenerationChunk] | None = None
        try:
            inner = self.engine.stream(self.generation_request(call))
            async for chunk in inner:
                yield chunk
        except EngineError:
            raise
        except InvalidRequestError as err:
            # The engine's own limits (prompt too long, max_tokens over its cap) or a field it cannot honour: the
            # client's request is at fault.
            code = "unsupported_parameter" if isinstance(err, UnsupportedFieldError) else "invalid_value"
            raise GatewayError(400, str(err), "invalid_request_error", err.param, code) from None
        except EmbeddedEngineError as err:
            raise EngineError(self.name, 503, f"not serving: {err}", "engine_unavailable") from err
        except (RuntimeError, ValueError, OSError) as err:
            raise EngineError(self.name, 502, f"generation failed: {err.__class__.__name__}: {err}") from err
        finally:
            # Closing our generator (client gone) must close the engine's too, now: that frees the batch slot.
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()

    async def complete(self, call: Call) -> Result:
        parts: list[str] = []
        logprobs: list[TokenLogprob] = []
        last = GenerationChunk("")
        async for chunk in self._chunks(call):
            parts.append(chunk.text)
            logprobs.extend(chunk.logprobs)
            last = chunk
        text = "".join(parts)
        p, c = last.prompt_tokens, last.completion_tokens
        lp = logprobs_json(call.kind, logprobs) if _wants_logprobs(call) else None
        body = dumps(build.full_response(call.kind, call.model, text, last.finish_reason, p, c, logprobs=lp))
        return Result(body, text, last.finish_reason, p, c)

    async def stream(self, call: Call) -> AsyncIterator[bytes]:
        rid, first = new_id(call.kind), True
        include_usage = bool(call.request.stream_options and call.request.stream_options.include_usage)
        wants_logprobs, offset = _wants_logprobs(call), 0
        gen = self._chunks(call)
        try:
            async for chunk in gen:
                if chunk.text or first or (wants_logprobs and chunk.logprobs):
                    lp = logprobs_json(call.kind, chunk.logprobs, offset) if wants_logprobs else None
                    if wants_logprobs:
                        offset += sum(len(e.token) for e in chunk.logprobs)
                    yield sse_event(build.chunk(call.kind, rid, call.model, chunk.text, first=first, logprobs=lp))
                    first = False
                if chunk.finish_reason is not None:
                    call.prompt_tokens, call.completion_tokens = chunk.prompt_tokens, chunk.completion_tokens
                    yield sse_event(build.chunk(call.kind, rid, call.model, "", chunk.finish_reason))
                    if include_usage:
                        yield sse_event(
                            build.chunk(
                                call.kind,
                                rid,
                                call.model,
                                None,
                                usage_=usage(chunk.prompt_tokens, chunk.completion_tokens),
                            )
                        )
                    yield SSE_DONE
                    return
            raise EngineError(self.name, 502, "generation ended without a finish reason")
        except EngineError as err:
            if first:
                raise
            yield sse_error(f"engine {self.name!r} failed mid-stream: {err.reason}", code=err.code)
        finally:
            await gen.aclose()


def _wants_logprobs(call: Call) -> bool:
    """Chat asks with ``logprobs: true``, completions with an integer ``logprobs``."""
    value = call.body.get("logprobs")
    return value is True if call.kind == "chat" else value is not None and value is not False
