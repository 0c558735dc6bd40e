"""Model -> engine routing by role, circuit breakers, failover and the structured-output retry loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from config.local_section import BreakerSpec
from local.breaker import CircuitBreaker
from local.engines.base import SSE_DONE, Call, Engine, Result, new_id, sse_chunk
from local.errors import EngineError, GatewayError
from local.metrics import Metrics
from local.structured import retry_messages, validation_error


class Router:
    """Picks engines for a request and fails over between them."""

    def __init__(self, engines: list[Engine], breaker: BreakerSpec, metrics: Metrics, structured_retries: int) -> None:
        self.engines = engines
        self.metrics = metrics
        self.structured_retries = structured_retries
        self.breakers = {e.name: CircuitBreaker(breaker.failure_threshold, breaker.cooldown_s) for e in engines}
        self.by_model: dict[str, list[Engine]] = {}
        for e in engines:
            for m in e.spec.models:
                self.by_model.setdefault(m, []).append(e)
        for e in engines:
            metrics.breaker.labels(e.name).set(0)

    @property
    def models(self) -> list[str]:
        return list(self.by_model)

    def candidates(self, model: str, structured: bool) -> list[Engine]:
        """Engines serving ``model``, those with the wanted role first (config order otherwise).

        Raises:
            GatewayError: 404 for a model no engine serves.
        """
        engines = self.by_model.get(model)
        if engines is None:
            raise GatewayError(
                404,
                f"model {model!r} does not exist; available: {', '.join(self.models)}",
                "invalid_request_error",
                "model",
                "model_not_found",
            )
        role = "structured" if structured else "default"
        return sorted(engines, key=lambda e: role not in e.spec.roles)

    def _set_gauge(self, engine: Engine) -> None:
        self.metrics.breaker.labels(engine.name).set(int(self.breakers[engine.name].state))

    def _fail(self, engine: Engine, call: Call, err: EngineError, problems: list[str]) -> None:
        self.breakers[engine.name].failure()
        self._set_gauge(engine)
        self.metrics.error(engine.name, call.model, err.code)
        problems.append(f"engine {engine.name!r} {err.reason}")

    def _exhausted(self, call: Call, problems: list[str], last: EngineError | None) -> GatewayError:
        status = last.status if last else 503
        code = last.code if last else "engines_unavailable"
        return GatewayError(
            status, f"model {call.model!r}: no engine could answer: {'; '.join(problems)}", "upstream_error", None, code
        )

    async def complete(self, call: Call) -> tuple[Engine, Result]:
        """Answer a non-streaming request, failing over on engine errors.

        Raises:
            GatewayError: 404 unknown model; 502/503/504 when every engine failed; 502 invalid structured output.
        """
        problems: list[str] = []
        last: EngineError | None = None
        for engine, breaker in self._available(call, problems):
            try:
                result = await self._complete_on(engine, call)
            except EngineError as err:
                last = err
                self._fail(engine, call, err, problems)
                continue
            except BaseException:
                breaker.release()
                raise
            breaker.success()
            self._set_gauge(engine)
            return engine, result
        raise self._exhausted(call, problems, last)

    def _available(self, call: Call, problems: list[str]) -> Iterator[tuple[Engine, CircuitBreaker]]:
        """The call's candidate engines whose breaker lets a request through, in order; notes the ones skipped."""
        for engine in self.candidates(call.model, call.schema is not None):
            breaker = self.breakers[engine.name]
            if breaker.allow():
                yield engine, breaker
            else:
                problems.append(f"engine {engine.name!r} circuit open (next probe in {breaker.retry_in():.0f} s)")

    async def _complete_on(self, engine: Engine, call: Call) -> Result:
        """One engine, with the bounded validate-and-retry loop when a schema was asked for."""
        result = await engine.complete(call)
        if call.schema is None:
            return result
        attempt_call = call
        for attempt in range(self.structured_retries + 1):
            problem = await asyncio.to_thread(validation_error, result.text, call.schema)
            if problem is None:
                return result
            self.metrics.error(engine.name, call.model, "invalid_structured_output")
            if attempt == self.structured_retries:
                raise GatewayError(
                    502,
                    f"engine {engine.name!r} returned output that does not match response_format after "
                    f"{attempt + 1} attempt(s): {problem}",
                    "upstream_error",
                    "response_format",
                    "invalid_structured_output",
                )
            if call.kind == "chat":
                attempt_call = _with_feedback(attempt_call, retry_messages(result.text, problem))
            result = await engine.complete(attempt_call)
        raise AssertionError("unreachable")  # pragma: no cover

    async def open_stream(self, call: Call) -> tuple[Engine, AsyncIterator[bytes]]:
        """Start a stream on the first engine that produces a first chunk; fail over until then.

        Returns:
            The engine and an iterator over the whole SSE stream (first chunk included).
        Raises:
            GatewayError: as :meth:`complete`.
        """
        problems: list[str] = []
        last: EngineError | None = None
        for engine, breaker in self._available(call, problems):
            try:
                if call.schema is not None and not engine.enforces_schema:
                    # Can't validate tokens as they stream: generate whole, validate, then stream the checked answer.
                    result = await self._complete_on(engine, call)
                    call.prompt_tokens, call.completion_tokens = result.prompt_tokens, result.completion_tokens
                    breaker.success()
                    self._set_gauge(engine)
                    return engine, _replay(call, result)
                stream = engine.stream(call)
                first = await anext(stream)
            except EngineError as err:
                last = err
                self._fail(engine, call, err, problems)
                continue
            except StopAsyncIteration:
                last = EngineError(engine.name, 502, "ended the stream before sending anything")
                self._fail(engine, call, last, problems)
                continue
            except BaseException:
                breaker.release()
                raise
            breaker.success()
            self._set_gauge(engine)
            return engine, _prepend(first, stream)
        raise self._exhausted(call, problems, last)


def _with_feedback(call: Call, messages: list[dict[str, str]]) -> Call:
    return Call(
        call.kind,
        call.model,
        call.request,
        call.body,
        call.raw,
        call.max_tokens,
        call.schema,
        [*call.extra_messages, *messages],
    )


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


async def _replay(call: Call, result: Result) -> AsyncIterator[bytes]:
    rid = new_id(call.kind)
    yield sse_chunk(call.kind, rid, call.model, result.text, first=True)
    yield sse_chunk(call.kind, rid, call.model, "", result.finish_reason or "stop")
    yield SSE_DONE
