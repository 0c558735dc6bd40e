"""Call a SageMaker endpoint (or moto, or the local container-contract server) with retries and readable errors.

    python -m inference.invoke --endpoint NAME "prompt" [--max-new-tokens 64] [--endpoint-url http://127.0.0.1:8080]
    python -m inference.invoke --endpoint NAME --stream "prompt"     # tokens as they come (LMI streams them)

Python API::

    client = EndpointClient("my-endpoint", region="us-east-1")
    result = client.generate("Hello", max_new_tokens=32)   # -> Generation(text=..., completion_tokens=...)
    for piece in client.stream("Hello"): ...                # text pieces, printed as they arrive
    for event in client.stream_events({"messages": [...], "max_tokens": 64}): ...   # parsed stream objects

What streams: the LMI engine (vLLM) answers InvokeEndpointWithResponseStream token by token, as JSON lines: the
standard schema (``{"inputs", "parameters", "stream": true}``) sends ``{"token": {"text": ...}}`` per token, the chat
schema (``{"messages", ..., "stream": true}``) sends OpenAI ``chat.completion.chunk`` objects. The handler engine's
container (the SageMaker inference toolkit on TorchServe) buffers: ``output_fn`` returns the whole answer, so the
stream carries one part with the whole JSON body; :meth:`EndpointClient.stream` yields its text once.

Throttling and transient errors (429/503, ThrottlingException, ServiceUnavailable, a container answering 429/503,
connection resets) are retried with capped exponential backoff and full jitter; a read timeout is not retried, because
the endpoint may still be generating and a retry would double the load.
"""

from __future__ import annotations

import argparse
import codecs
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from wire import build

JSON_TYPE = "application/json"
RETRYABLE_CODES = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalDependencyException",
}
RETRYABLE_STATUS = {429, 502, 503, 504}
ENGINES = ("handler", "lmi")


class InvokeError(Exception):
    """An invocation failed; ``status`` is the HTTP status (the container's, for model errors) when known."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Generation:
    """The handler's response: scalars for one prompt, lists for a list."""

    text: str | list[str]
    prompt_tokens: int | list[int] | None
    completion_tokens: int | list[int] | None
    finish_reason: str | list[str] | None
    raw: dict[str, Any]


def _container_message(original: str) -> str:
    """The container's error text: our handler puts an OpenAI error body on the first line, a traceback after."""
    first = original.split("\n", 1)[0]
    try:
        body = json.loads(first)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"].get("message") or first)
    except json.JSONDecodeError:
        pass
    return first[:500]


class EndpointClient:
    """A small client over boto3 ``sagemaker-runtime`` for one endpoint."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        engine: str = "handler",
    ) -> None:
        """Create the client.

        Args:
            endpoint_name: the SageMaker endpoint name.
            region: AWS region (default from the environment/profile).
            endpoint_url: override the runtime URL (moto, the local server, a VPC endpoint).
            timeout_s: read timeout for one attempt (generation can be slow; SageMaker's own limit is 60 s).
            max_attempts: total attempts for retryable errors (1 disables retries).
            client: an existing boto3 sagemaker-runtime client (then region/endpoint_url/timeouts are ignored).
            engine: the endpoint's ``endpoint.engine``: ``lmi`` is asked to stream with ``"stream": true`` in the
                body; the ``handler`` container streams nothing (it buffers), so its body stays the plain request.
        Raises:
            ValueError: a bad argument, naming it.
        """
        if not endpoint_name:
            raise ValueError("endpoint_name: required")
        if max_attempts < 1:
            raise ValueError(f"max_attempts: {max_attempts} must be >= 1")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: {timeout_s} must be > 0")
        if engine not in ENGINES:
            raise ValueError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}")
        self.engine = engine
        self.endpoint_name = endpoint_name
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        if client is None:
            import boto3
            from botocore.config import Config

            # botocore's own retries are off: this class retries, so attempts are counted once and logged clearly.
            config = Config(
                read_timeout=timeout_s,
                connect_timeout=connect_timeout_s,
                retries={"total_max_attempts": 1, "mode": "standard"},
            )
            session = boto3.session.Session(region_name=region)
            client = session.client("sagemaker-runtime", endpoint_url=endpoint_url, config=config)
        self.client = client

    # -- error handling -------------------------------------------------------------------------------------------

    def _classify(self, err: Exception) -> tuple[bool, InvokeError]:
        """(retryable, readable error) for a botocore exception."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        name = self.endpoint_name
        if isinstance(err, NoCredentialsError):
            return False, InvokeError(
                "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/SECRET", code="NoCredentials"
            )
        if isinstance(err, ReadTimeoutError):
            return False, InvokeError(
                f"endpoint {name!r} did not answer within {self.timeout_s:g} s (read timeout)", code="Timeout"
            )
        if isinstance(err, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
            return True, InvokeError(f"cannot reach the sagemaker-runtime endpoint: {err}", code="ConnectionError")
        if isinstance(err, ClientError):
            e = err.response.get("Error", {})
            code = str(e.get("Code", ""))
            msg = str(e.get("Message", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "ModelError":
                original_status = err.response.get("OriginalStatusCode")
                detail = _container_message(str(err.response.get("OriginalMessage", msg)))
                retry = original_status in RETRYABLE_STATUS
                return retry, InvokeError(f"model returned {original_status}: {detail}", original_status, code)
            if code == "ValidationError" and "not found" in msg.lower():
                return False, InvokeError(
                    f"endpoint {name!r} not found (check the name and region): {msg}", status, code
                )
            if code in {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException"}:
                return False, InvokeError(
                    f"not allowed to invoke {name!r} (needs sagemaker:InvokeEndpoint): {msg}", status, code
                )
            if code == "ModelNotReadyException":
                return True, InvokeError(f"endpoint {name!r} is not ready yet: {msg}", status, code)
            retry = code in RETRYABLE_CODES or status in RETRYABLE_STATUS
            return retry, InvokeError(f"{code or 'error'} ({status}) from endpoint {name!r}: {msg}", status, code)
        return False, InvokeError(f"{type(err).__name__}: {err}")

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        last: InvokeError | None = None
        for attempt in range(self.max_attempts):
            try:
                return fn(EndpointName=self.endpoint_name, **kwargs)
            except Exception as err:
                retry, readable = self._classify(err)
                last = readable
                if not retry or attempt + 1 == self.max_attempts:
                    break
                delay = random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))  # noqa: S311
                print(f"retrying in {delay:.2f} s after: {readable}", file=sys.stderr)
                self._sleep(delay)
        assert last is not None
        if self.max_attempts > 1 and last.code in RETRYABLE_CODES | {"ModelNotReadyException"}:
            raise InvokeError(f"{last} (gave up after {self.max_attempts} attempts)", last.status, last.code)
        raise last

    # -- API ------------------------------------------------------------------------------------------------------

    def invoke_json(self, payload: dict[str, Any]) -> Any:
        """POST ``payload`` as JSON and return the decoded JSON response (an object, or a list of objects).

        Raises:
            InvokeError: transport, AWS or model error (after retries), or a response that is neither.
        """
        resp = self._call(
            self.client.invoke_endpoint, Body=json.dumps(payload).encode(), ContentType=JSON_TYPE, Accept=JSON_TYPE
        )
        body = resp["Body"].read()
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvokeError(f"endpoint {self.endpoint_name!r} answered non-JSON: {body[:200]!r}") from None
        if not isinstance(data, dict) and not (isinstance(data, list) and all(isinstance(d, dict) for d in data)):
            raise InvokeError(f"endpoint {self.endpoint_name!r} answered {type(data).__name__}, expected an object")
        return data

    def generate(self, inputs: str | list[str], **parameters: Any) -> Generation:
        """Generate for one prompt or a list (batched by the container in one ``generate`` call).

        Args:
            inputs: a prompt or a list of prompts.
            parameters: max_new_tokens, temperature, top_p, top_k, do_sample, repetition_penalty, stop, seed, ...
        Raises:
            InvokeError: see :meth:`invoke_json`; also when the response lacks ``generated_text`` or reports LMI's
                in-band error (``finish_reason: "error"``).
        """
        payload: dict[str, Any] = {"inputs": inputs}
        if parameters:
            payload["parameters"] = parameters
        data = self.invoke_json(payload)
        for item in data if isinstance(data, list) else [data]:
            raise_inband_error(item)
        if isinstance(data, list):  # a list of inputs answers one object per input (Hugging Face shape)
            if not all("generated_text" in d for d in data):
                raise InvokeError(f"endpoint {self.endpoint_name!r} response has no generated_text: {str(data)[:200]}")
            return Generation(
                text=[d["generated_text"] for d in data],
                prompt_tokens=[d.get("prompt_tokens") for d in data],
                completion_tokens=[d.get("completion_tokens") for d in data],
                finish_reason=[d.get("finish_reason") for d in data],
                raw={"items": data},
            )
        if "generated_text" not in data:
            raise InvokeError(f"endpoint {self.endpoint_name!r} response has no generated_text: {str(data)[:200]}")
        return Generation(
            text=data["generated_text"],
            prompt_tokens=data.get("prompt_tokens"),
            completion_tokens=data.get("completion_tokens"),
            finish_reason=data.get("finish_reason"),
            raw=data,
        )

    def stream(self, inputs: str, **parameters: Any) -> Iterator[str]:
        """Stream the generated text of one prompt, piece by piece as the container sends it.

        The payload is the standard schema ``{"inputs", "parameters"}``, plus ``"stream": true`` for LMI.

        Raises:
            InvokeError: the request failed, the stream reported ModelStreamError/InternalStreamFailure, or it sent
                something that is not a known stream format.
        """
        payload: dict[str, Any] = {"inputs": inputs}
        if parameters:
            payload["parameters"] = parameters
        for event in self.stream_events(payload):
            piece = stream_piece(event).text
            if piece:
                yield piece

    def stream_events(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST ``payload`` to ``invoke_endpoint_with_response_stream`` and yield each JSON object it streams.

        The payload parts are joined and split into lines (a part may end mid-line or mid-character); each line is
        one JSON object, with or without an SSE ``data:`` prefix; ``[DONE]`` and blank lines are skipped. A body
        that is one JSON document without a newline (a buffering container) is yielded once at the end.

        Raises:
            InvokeError: as :meth:`stream`.
        """
        if self.engine == "lmi":
            payload = {**payload, "stream": True}
        resp = self._call(
            self.client.invoke_endpoint_with_response_stream,
            Body=json.dumps(payload).encode(),
            ContentType=JSON_TYPE,
            Accept="application/jsonlines",
        )
        lines = LineSplitter()
        body = resp["Body"]
        try:
            for event in self._events(body):
                if "PayloadPart" in event:
                    for line in lines.feed(event["PayloadPart"].get("Bytes", b"")):
                        obj = self._line_object(line)
                        if obj is not None:
                            yield obj
                elif "ModelStreamError" in event:
                    e = event["ModelStreamError"]
                    raise InvokeError(
                        f"model stream error {e.get('ErrorCode')}: {e.get('Message')}", code="ModelStreamError"
                    )
                elif "InternalStreamFailure" in event:
                    raise InvokeError(
                        f"stream failed: {event['InternalStreamFailure'].get('Message')}",
                        code="InternalStreamFailure",
                    )
            for line in lines.close():
                obj = self._line_object(line)
                if obj is not None:
                    yield obj
        finally:
            # A caller that stops early (a client that went away) must not leave the connection open.
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def _events(self, body: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The stream's events; botocore raises an error event (message type ``exception``) as EventStreamError."""
        from botocore.exceptions import BotoCoreError, EventStreamError

        it = iter(body)
        while True:
            try:
                event = next(it)
            except StopIteration:
                return
            except EventStreamError as err:
                e = err.response.get("Error", {})
                code = str(e.get("Code") or "ModelStreamError")
                raise InvokeError(f"model stream error {code}: {e.get('Message')}", code=code) from None
            except BotoCoreError as err:
                raise InvokeError(f"stream from {self.endpoint_name!r} broke: {err}", code="StreamBroken") from None
            yield event

    def _line_object(self, line: str) -> dict[str, Any] | None:
        text = line.strip()
        if text.startswith("data:"):
            text = text[5:].strip()
        if not text or text == "[DONE]":
            return None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            raise InvokeError(
                f"endpoint {self.endpoint_name!r} streamed a line that is not JSON: {text[:200]!r}", code="BadStream"
            ) from None
        if not isinstance(obj, dict):
            raise InvokeError(f"endpoint {self.endpoint_name!r} streamed {type(obj).__name__}, expected an object")
        if isinstance(obj.get("error"), dict | str):
            err = obj["error"]
            message = err.get("message") if isinstance(err, dict) else err
            raise InvokeError(f"model stream error: {message}", code="ModelStreamError")
        return obj


class LineSplitter:
    """Bytes in, complete UTF-8 lines out; a character or line split across payload parts waits for the rest."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    def feed(self, data: bytes) -> list[str]:
        self._buffer += self._decoder.decode(data)
        *complete, self._buffer = self._buffer.split("\n")
        return complete

    def close(self) -> list[str]:
        rest = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        return [rest] if rest.strip() else []


# LMI's finish reasons -> OpenAI's (https://github.com/deepjavalibrary/djl-serving, chat_input_output_schema.md).


@dataclass(frozen=True)
class StreamPiece:
    """What one streamed object says: new text, and (on the last) why generation stopped and the token counts."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def raise_inband_error(obj: dict[str, Any]) -> None:
    """Raise LMI's in-band error: a request its rolling batch could not run ends with HTTP 200 and
    ``finish_reason: "error"`` (djl-serving ``stop_on_any_exception``), the engine's message in ``token.error_msg``
    when streamed. Read as an answer, it would be an empty text that looks like success.

    Raises:
        InvokeError: ``obj`` reports ``finish_reason: "error"`` (code ``ModelError``).
    """
    details: dict[str, Any] = obj["details"] if isinstance(obj.get("details"), dict) else {}
    choices: list[Any] = obj["choices"] if isinstance(obj.get("choices"), list) else []
    finish = [details.get("finish_reason"), *(c.get("finish_reason") for c in choices if isinstance(c, dict))]
    if "error" not in finish:
        return
    tokens = [obj.get("token"), *(details.get("tokens") or [])]
    messages = [t["error_msg"] for t in tokens if isinstance(t, dict) and t.get("error_msg")]
    # LMI carries the engine's message only on a streamed standard-schema token and in details.tokens
    reason = messages[-1] if messages else "LMI sent no message (the container's log has it)"
    raise InvokeError(f"the model failed the request (LMI finish_reason 'error'): {reason}", code="ModelError")


def stream_piece(obj: dict[str, Any]) -> StreamPiece:
    """Read one streamed object in any of the shapes the two engines send.

    - OpenAI chunks (LMI chat schema, our handler for ``messages``): ``choices[0].delta.content`` / ``.text``.
    - LMI/TGI standard schema: ``{"token": {"text": ...}, "details": {"finish_reason", "generated_tokens"}}``.
    - A whole answer from a buffering container: ``{"generated_text": ...}`` or an OpenAI completion.

    Raises:
        InvokeError: an object in none of these shapes, or LMI's in-band error (``finish_reason: "error"``).
    """
    raise_inband_error(obj)
    usage: dict[str, Any] = obj["usage"] if isinstance(obj.get("usage"), dict) else {}
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    choices = obj.get("choices")
    if isinstance(choices, list):
        if not choices:  # a usage-only chunk
            return StreamPiece(prompt_tokens=p, completion_tokens=c)
        ch = choices[0]
        delta = ch.get("delta") or ch.get("message") or {}
        text = delta.get("content") if isinstance(delta, dict) and "content" in delta else ch.get("text")
        finish = ch.get("finish_reason")
        return StreamPiece(str(text or ""), build.openai_finish_reason(finish) if finish else None, p, c)
    if isinstance(obj.get("token"), dict):
        details: dict[str, Any] = obj["details"] if isinstance(obj.get("details"), dict) else {}
        finish = details.get("finish_reason")
        return StreamPiece(
            "" if obj["token"].get("special") else str(obj["token"].get("text") or ""),
            build.openai_finish_reason(finish) if finish else None,
            details.get("prompt_tokens"),
            details.get("generated_tokens"),
        )
    if "generated_text" in obj:
        text = obj["generated_text"]
        if isinstance(text, list):
            raise InvokeError("a streamed answer holds a list of generations; stream one prompt at a time")
        # our handler puts the counts at the top level; LMI in "details" (when the request asked for details)
        details = obj["details"] if isinstance(obj.get("details"), dict) else {}
        finish = obj.get("finish_reason") or details.get("finish_reason")
        return StreamPiece(
            str(text or ""),
            build.openai_finish_reason(finish) if finish else None,
            obj.get("prompt_tokens", details.get("prompt_tokens")),
            obj.get("completion_tokens", details.get("generated_tokens")),
        )
    raise InvokeError(f"streamed object in no known shape (keys {sorted(obj)[:8]})", code="BadStream")


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in ("max_new_tokens", "temperature", "top_p", "top_k", "seed"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    if args.stop:
        params["stop"] = args.stop
    return params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Invoke a SageMaker LLM endpoint with one prompt.")
    ap.add_argument("prompt", nargs="+", help="the prompt (several prompts are sent as one batched list)")
    ap.add_argument("--endpoint", help="endpoint name (default: the one config/<env>.yaml deploys)")
    ap.add_argument("--env", help="read endpoint name, engine and region from config/<env>.yaml")
    ap.add_argument("--engine", choices=ENGINES, help="the endpoint's engine (default: from --env, else handler)")
    ap.add_argument("--endpoint-url", help="runtime URL override: moto or the local server (http://127.0.0.1:8080)")
    ap.add_argument("--region", help="AWS region (default from the environment/profile)")
    ap.add_argument("--max-new-tokens", type=int)
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--top-p", type=float)
    ap.add_argument("--top-k", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--stop", action="append", help="stop sequence (repeatable)")
    ap.add_argument("--timeout", type=float, default=60.0, help="read timeout per attempt in seconds (default 60)")
    ap.add_argument("--attempts", type=int, default=5, help="attempts on throttling/transient errors (default 5)")
    ap.add_argument("--stream", action="store_true", help="use invoke_endpoint_with_response_stream")
    ap.add_argument("--json", action="store_true", help="print the whole JSON response")
    args = ap.parse_args(argv)
    endpoint, engine, region = args.endpoint, args.engine, args.region
    if args.env:
        from config import ConfigError, load_config

        try:
            cfg = load_config(args.env)
        except ConfigError as err:
            print(f"config error:\n{err}", file=sys.stderr)
            return 2
        endpoint = endpoint or cfg.endpoint_name
        engine = engine or cfg.endpoint.engine
        region = region or cfg.aws.region
    if not endpoint:
        ap.error("give --endpoint NAME or --env ENV")
    try:
        client = EndpointClient(
            endpoint,
            region=region,
            endpoint_url=args.endpoint_url,
            timeout_s=args.timeout,
            max_attempts=args.attempts,
            engine=engine or "handler",
        )
        if args.stream:
            for piece in client.stream(" ".join(args.prompt), **_parameters(args)):
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            return 0
        inputs: str | list[str] = args.prompt[0] if len(args.prompt) == 1 else list(args.prompt)
        result = client.generate(inputs, **_parameters(args))
    except (InvokeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.raw, ensure_ascii=False, indent=2))
    elif isinstance(result.text, list):
        for text in result.text:
            print(text)
    else:
        print(result.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
