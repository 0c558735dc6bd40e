"""Model -> engine routing by role, circuit breakers, failover, deadlines, and what happens to a stream between the
engine and the client (first-event check, renaming, usage, structured-output validation, failure accounting)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from config.local_section import BreakerSpec
from local.engines.base import SSE_DONE, Call, Engine, Result, new_id, sse_error, sse_event, usage
from local.errors import (
    EngineBadResponse,
    EngineError,
    EngineStatusError,
    EngineTimeout,
    GatewayError,
    UpstreamRejected,
    bad_request,
)
from local.metrics import Metrics
from local.structured import retry_messages, validation_error
from wire import build
from wire.breaker import BreakerState, CircuitBreaker
from wire.sse import DONE_PAYLOAD, parse_events

USAGE_MARK = b'"usage":{'
ERROR_MARK = b'data: {"error"'
MAX_FIRST_EVENT = 1 << 20  # bytes read looking for a stream's first event before calling the stream broken
MAX_TAIL = 8 << 20  # bytes of one unfinished event held back


def length_error(call: Call, problem: str) -> GatewayError:
    """The client's limit cut a structured answer short: a 400, and no retry could help."""
    return GatewayError(
        400,
        f"max_tokens={call.max_tokens} ended the answer before it matched response_format ({problem}); "
        "raise max_tokens (or max_completion_tokens)",
        "invalid_request_error",
        "max_tokens",
        "structured_output_truncated",
    )


class Router:
    """Picks engines for a request and fails over between them, within one deadline."""

    def __init__(
        self,
        engines: list[Engine],
        breaker: BreakerSpec,
        metrics: Metrics,
        structured_retries: int,
        request_timeout_s: float = 600.0,
    ) -> None:
        self.engines = engines
        self.metrics = metrics
        self.structured_retries = structured_retries
        self.request_timeout_s = request_timeout_s
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

    def candidates(self, model: str, structured: bool, n: int = 1) -> list[Engine]:
        """Engines serving ``model`` (those able to return ``n`` choices), the wanted role first.

        Raises:
            GatewayError: 404 for a model no engine serves; 400 for ``n > 1`` when none of its engines supports it.
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
        if n > 1:
            engines = [e for e in engines if e.supports_n]
            if not engines:
                raise bad_request(
                    f"n: model {model!r} is served by engines that return one choice per request; use n=1", "n"
                )
        role = "structured" if structured else "default"
        return sorted(engines, key=lambda e: role not in e.spec.roles)

    def _set_gauge(self, engine: Engine) -> None:
        self.metrics.breaker.labels(engine.name).set(int(self.breakers[engine.name].state))

    def breaker_open(self, engine: Engine) -> bool:
        return self.breakers[engine.name].state is BreakerState.OPEN

    def _fail(self, engine: Engine, call: Call, err: EngineError, problems: list[str]) -> None:
        self.breakers[engine.name].failure()
        self._set_gauge(engine)
        self.metrics.error(engine.name, call.model, err.code)
        problems.append(f"engine {engine.name!r} {err.reason}")

    def _exhausted(self, call: Call, problems: list[str], last: EngineError | None) -> GatewayError:
        status = last.status if last else 503
        code = last.code if last else "engines_unavailable"
        return GatewayError(
            status,
            f"model {call.model!r}: no engine could answer: {'; '.join(problems)}",
            "upstream_error",
            None,
            code,
            last.headers if last else None,
        )

    def _available(self, call: Call, problems: list[str]) -> Iterator[tuple[Engine, CircuitBreaker]]:
        """The call's candidate engines whose breaker lets a request through, in order, while the request deadline
        has time left; notes the ones skipped. Sets ``call.deadline`` to each attempt's own deadline."""
        loop = asyncio.get_running_loop()
        overall = loop.time() + self.request_timeout_s
        for engine in self.candidates(call.model, call.schema is not None, call.n):
            now = loop.time()
            if now >= overall:
                problems.append(f"request_timeout_s={self.request_timeout_s:g} passed before engine {engine.name!r}")
                return
            breaker = self.breakers[engine.name]
            if breaker.allow():
                call.deadline = min(overall, now + engine.spec.request_timeout_s)
                yield engine, breaker
            else:
                problems.append(f"engine {engine.name!r} circuit open (next probe in {breaker.retry_in():.0f} s)")

    def _timed_out(self, engine: Engine) -> EngineTimeout:
        return EngineTimeout(
            engine.name,
            reason=f"no complete answer within the request deadline (request_timeout_s="
            f"{min(engine.spec.request_timeout_s, self.request_timeout_s):g})",
        )

    async def complete(self, call: Call) -> tuple[Engine, Result]:
        """Answer a non-streaming request, failing over on engine errors, within the deadline.

        Raises:
            GatewayError: 404 unknown model; 502/503/504 when every engine failed; 502 invalid structured output;
                400 when ``max_tokens`` cut a structured answer short.
            UpstreamRejected: the engine's 4xx.
        """
        problems: list[str] = []
        last: EngineError | None = None
        for engine, breaker in self._available(call, problems):
            outcome = await self._try_complete(engine, breaker, call, problems)
            if isinstance(outcome, EngineError):
                last = outcome
                continue
            return engine, outcome
        raise self._exhausted(call, problems, last)

    async def _try_complete(
        self, engine: Engine, breaker: CircuitBreaker, call: Call, problems: list[str]
    ) -> Result | EngineError:
        """One engine's whole answer within the deadline, with the breaker booked: the result, or the engine error
        to fail over on (already recorded in ``problems``). A client error (the engine answered) is re-raised."""
        try:
            async with asyncio.timeout_at(call.deadline):
                result = await self._complete_on(engine, call)
        except TimeoutError:
            err: EngineError = self._timed_out(engine)
        except EngineError as exc:
            err = exc
        except (GatewayError, UpstreamRejected):
            breaker.success()  # the engine answered; the answer is the client's problem
            self._set_gauge(engine)
            raise
        except BaseException:
            breaker.release()
            raise
        else:
            breaker.success()
            self._set_gauge(engine)
            return result
        self._fail(engine, call, err, problems)
        return err

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
            if result.finish_reason == "length":
                self.metrics.error(engine.name, call.model, "structured_output_truncated")
                raise length_error(call, problem)
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
        """Start a stream on the first engine whose first event is a valid chunk; fail over until then.

        Returns:
            The engine and an iterator over the whole SSE stream (first event included).
        Raises:
            GatewayError, UpstreamRejected: as :meth:`complete`.
        """
        problems: list[str] = []
        last: EngineError | None = None
        for engine, breaker in self._available(call, problems):
            if call.schema is not None and not engine.enforces_schema:
                # Can't validate tokens as they stream: generate whole, validate, then stream the checked answer.
                outcome = await self._try_complete(engine, breaker, call, problems)
                if isinstance(outcome, EngineError):
                    last = outcome
                    continue
                result = outcome
                call.prompt_tokens, call.completion_tokens = result.prompt_tokens, result.completion_tokens
                return engine, _replay(call, result)
            stream = engine.stream(call)
            try:
                async with asyncio.timeout_at(call.deadline):
                    head = await self._first_event(engine, stream)
            except BaseException as exc:
                await _close(stream)
                if isinstance(exc, TimeoutError):
                    last = self._timed_out(engine)
                elif isinstance(exc, EngineError):
                    last = exc
                elif isinstance(exc, StopAsyncIteration):
                    last = EngineBadResponse(engine.name, reason="ended the stream before sending anything")
                else:
                    if isinstance(exc, UpstreamRejected):
                        breaker.success()
                        self._set_gauge(engine)
                    else:
                        breaker.release()
                    raise
                self._fail(engine, call, last, problems)
                continue
            return engine, self._relay(engine, breaker, call, head, stream)
        raise self._exhausted(call, problems, last)

    async def _first_event(self, engine: Engine, stream: AsyncIterator[bytes]) -> bytes:
        """Read until the stream's first event is complete; check it is a chunk, not garbage or an error.

        Returns:
            The bytes read so far (sent to the client as they are once the stream is accepted).
        Raises:
            EngineError: malformed, error or empty first event (the router fails over).
        """
        first: bytes | None = None
        buf = b""
        while first is None:
            chunk = await anext(stream)
            buf = buf + chunk if buf else chunk
            first = _first_data(buf)
            if first is None and len(buf) > MAX_FIRST_EVENT:
                raise EngineBadResponse(engine.name, reason="sent no complete SSE event in its first 1 MiB")
        if first == DONE_PAYLOAD:
            raise EngineBadResponse(engine.name, reason="ended the stream before sending anything")
        try:
            obj = orjson.loads(first)
        except orjson.JSONDecodeError:
            raise EngineBadResponse(
                engine.name, reason=f"sent a first event that is not JSON: {first[:80]!r}"
            ) from None
        if not isinstance(obj, dict):
            raise EngineBadResponse(engine.name, reason=f"sent a first event that is not an object: {first[:80]!r}")
        if "error" in obj:
            err = obj["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            raise EngineStatusError(engine.name, 502, f"stream started with an error event: {str(msg)[:300]}")
        return buf

    async def _relay(
        self, engine: Engine, breaker: CircuitBreaker, call: Call, head: bytes, stream: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """The rest of the stream, event-aligned: renamed, usage taken (and stripped if injected), structured output
        checked before ``[DONE]``, and any failure after the first byte sent as an error event and counted."""
        upstream = engine.spec.upstream_model(call.model)
        public = call.answer_model
        # Engines answer under the upstream name (vLLM) or the routed one (embedded, Ollama); the client sees public.
        renames = [
            (b'"model":"' + name.encode() + b'"', b'"model":"' + public.encode() + b'"')
            for name in dict.fromkeys((upstream, call.model))
            if name != public and (name == upstream or call.public_model)
        ]
        bounded = not engine.enforces_deadline
        check = _StreamCheck(call) if call.schema is not None else None
        pending: bytes | None = head
        tail = b""
        done = False
        failure: str | None = None
        status = 200
        finished = False
        try:
            while True:
                if pending is not None:
                    chunk, pending = pending, None
                else:
                    try:
                        if bounded:
                            async with asyncio.timeout_at(call.deadline):
                                chunk = await anext(stream)
                        else:
                            chunk = await anext(stream)
                    except StopAsyncIteration:
                        break
                data = tail + chunk if tail else chunk
                cut = data.rfind(b"\n\n") + 2
                if cut < 2:
                    tail = data
                    if len(tail) > MAX_TAIL:
                        raise EngineBadResponse(engine.name, reason=f"sent an SSE event over {MAX_TAIL} bytes")
                    continue
                out, tail = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
                for rename in renames:
                    out = out.replace(*rename)
                if check is None and USAGE_MARK not in out and ERROR_MARK not in out:
                    # The common piece: plain chunks, perhaps ending with [DONE]; nothing to parse.
                    if SSE_DONE in out:
                        if out.endswith(SSE_DONE):
                            done = True
                        else:
                            out, done, event_failure = _inspect(out, call, check)
                            failure = failure or event_failure
                else:
                    out, done, event_failure = _inspect(out, call, check)
                    failure = failure or event_failure
                if out:
                    yield out
                if done:
                    break
            if not done and failure is None:
                raise EngineBadResponse(engine.name, reason="ended the stream without data: [DONE]")
            finished = True
        except TimeoutError:
            err: EngineError = self._timed_out(engine)
            failure, status = err.code, err.status
            yield sse_error(f"engine {engine.name!r} failed mid-stream: {err.reason}", code=err.code)
            finished = True
        except EngineError as e:
            failure, status = e.code, e.status
            yield sse_error(f"engine {engine.name!r} failed mid-stream: {e.reason}", code=e.code)
            finished = True
        finally:
            await _close(stream)
            if failure is not None and failure != "structured_output_truncated":
                # The engine failed, whether or not the client stayed to the end (an SDK that raises on the error
                # event closes the connection at once, before this generator is resumed).
                breaker.failure()
            elif not finished:
                breaker.release()  # the client went away: neither success nor failure
            else:
                breaker.success()
            if failure is not None:
                call.failure, call.failure_status = failure, status if status != 200 else 502
                if failure == "structured_output_truncated":
                    call.failure_status = 400
                self.metrics.stream_error(engine.name, failure)
            self._set_gauge(engine)


class _StreamCheck:
    """Collects a stream's text (choice 0) to validate it against the schema before ``[DONE]`` goes out."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.parts: list[str] = []
        self.finish: str | None = None

    def add(self, obj: dict[str, Any]) -> None:
        for c in obj.get("choices") or ():
            if not isinstance(c, dict) or c.get("index", 0) != 0:
                continue
            if self.call.kind == "chat":
                delta = c.get("delta") or {}
                piece = delta.get("content") if isinstance(delta, dict) else None
            else:
                piece = c.get("text")
            if piece:
                self.parts.append(str(piece))
            if c.get("finish_reason"):
                self.finish = c["finish_reason"]

    def verdict(self) -> tuple[bytes, str | None]:
        """The event to send instead of ``[DONE]`` (``[DONE]`` itself when valid) and the failure, if any."""
        assert self.call.schema is not None
        problem = validation_error("".join(self.parts), self.call.schema)
        if problem is None:
            return SSE_DONE, None
        if self.finish == "length":
            err = length_error(self.call, problem)
            return sse_error(err.message, err.type, err.code), "structured_output_truncated"
        return (
            sse_error(f"the answer does not match response_format: {problem}", code="invalid_structured_output"),
            "invalid_structured_output",
        )


def _inspect(out: bytes, call: Call, check: _StreamCheck | None) -> tuple[bytes, bool, str | None]:
    """Look at the events of an event-aligned piece. Returns the bytes to send, whether the stream is done and
    a failure seen (an upstream error event, invalid structured output)."""
    kept: list[bytes] = []
    done = False
    failure: str | None = None
    for ev in out.split(b"\n\n"):
        if not ev:
            continue
        event = ev + b"\n\n"
        if event == SSE_DONE:
            if check is not None:
                event, failure = check.verdict()
            kept.append(event)
            done = True
            break
        if event.startswith(ERROR_MARK):
            failure = "upstream_error_event"
            kept.append(event)
            continue
        if (USAGE_MARK in event or check is not None) and event.startswith(b"data: {"):
            try:
                obj = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                kept.append(event)
                continue
            if check is not None:
                check.add(obj)
            u = obj.get("usage")
            if isinstance(u, dict):
                call.prompt_tokens = int(u.get("prompt_tokens") or 0)
                call.completion_tokens = int(u.get("completion_tokens") or 0)
                if call.strip_usage:
                    if not obj.get("choices"):
                        continue  # the usage-only chunk the client did not ask for
                    del obj["usage"]
                    event = b"data: " + orjson.dumps(obj) + b"\n\n"
        kept.append(event)
    return b"".join(kept), done, failure


def _first_data(buf: bytes) -> bytes | None:
    """The data payload of the first complete event carrying data (comment-only events skipped), if any yet."""
    start = 0
    while True:
        end = buf.find(b"\n\n", start)
        if end < 0:
            crlf = buf.find(b"\r\n\r\n", start)
            if crlf < 0:
                return None
            end = crlf
        events = parse_events(buf[start : end + 2].replace(b"\r\n", b"\n") + b"\n")
        if events:
            return events[0]
        start = end + 2


async def _close(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


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
        deadline=call.deadline,
        public_model=call.public_model,
    )


async def _replay(call: Call, result: Result) -> AsyncIterator[bytes]:
    rid = new_id(call.kind)
    yield sse_event(build.chunk(call.kind, rid, call.answer_model, result.text, first=True))
    yield sse_event(build.chunk(call.kind, rid, call.answer_model, "", result.finish_reason or "stop"))
    if call.request.include_usage:
        yield sse_event(
            build.chunk(
                call.kind, rid, call.answer_model, None, usage_=usage(result.prompt_tokens, result.completion_tokens)
            )
        )
    yield SSE_DONE
