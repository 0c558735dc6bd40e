"""SageMaker inference handler: a thin toolkit adapter (``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``)
over the generation core (``local/embedded``: continuous batching, chat templates, streaming stop strings).

The package build copies this file to ``code/inference.py``, the core to ``code/local/embedded/`` and the OpenAI wire
module (request rules, response builders, error body) to ``code/wire/`` in ``model.tar.gz``; the container puts
``code/`` on ``sys.path``, so the same imports work there and in this repo.

Bodies accepted at ``/invocations`` (JSON):
- OpenAI chat (``{"messages": [...], ...}``) -> a ``chat.completion``; OpenAI completions (``{"prompt": ...}``) ->
  a ``text_completion``. The endpoint applies the model's chat template, exactly like the local gateway.
- the reference guide's ``{"inputs": str | [str, ...], "parameters": {...}}``: one string ->
  ``{"generated_text", "prompt_tokens", "completion_tokens", "finish_reason"}``; a list -> a list of such objects
  (the Hugging Face containers' shape), generated together in one batch.

How the toolkit calls it (sagemaker_inference.transformer.Transformer): ``model_fn(model_dir[, context])`` once per
worker; per request ``input_fn(body, content_type)`` -> ``predict_fn(data, model)`` -> ``output_fn(prediction,
accept)``. An exception subclassing ``BaseInferenceToolkitError`` answers with its ``status_code``; anything else is a
500, so every bad request raises :class:`RequestError` (4xx, OpenAI error body). Limits come from the container's
environment, read once in ``model_fn`` (names, defaults and bounds: ``local/embedded/limits.py``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from local.embedded.api import GenerationRequest
from local.embedded.errors import EmbeddedEngineError, InvalidRequestError, PromptTooLongError, UnsupportedFieldError
from local.embedded.limits import RuntimeLimits, read_runtime_env, retired_variables
from local.embedded.loading import model_positions_in, served_model_name
from local.embedded.openai import Kind, generation_request, logprobs_json
from local.embedded.sampling import SEED_MODULUS
from local.embedded.settings import EmbeddedSettings
from local.embedded.shared import SharedEngine, open_shared
from local.embedded.sync import Generation, SyncEngine
from wire import build as wire_build
from wire import validate as wire_validate
from wire.errors import WireError, error_body, error_type

LOG = logging.getLogger("llm_deploy.inference")
JSON_TYPE = "application/json"
SERVED_MODEL_PLACEHOLDER = "served-model"
# wire's rules with this endpoint's shape: one choice; max_tokens is checked against MAX_NEW_TOKENS by the core.
OPENAI_LIMITS = wire_validate.Limits(max_n=1)
GUIDE_PARAMETERS = (
    "max_new_tokens",
    "min_new_tokens",
    "temperature",
    "top_p",
    "do_sample",
    "stop",
    "seed",
    "return_full_text",
)

if TYPE_CHECKING:
    _ToolkitError = Exception
else:
    try:  # inside the container: the toolkit maps this base class to the HTTP status we set
        from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError
    except ImportError:  # local server and tests: same constructor and attributes

        class _ToolkitError(Exception):
            def __init__(self, status_code: int, message: str, phrase: str) -> None:
                self.status_code = status_code
                self.message = message
                self.phrase = phrase
                super().__init__(status_code, message, phrase)


_PHRASES = {
    400: "Bad Request",
    406: "Not Acceptable",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    503: "Service Unavailable",
}


class RequestError(_ToolkitError):
    """An error answered with ``status_code`` and the OpenAI body ``{"error": {"message","type","param","code"}}``
    (built by :mod:`wire.errors`); the message starts with the field (``param``) when there is one."""

    def __init__(
        self,
        param: str | None,
        detail: str,
        status_code: int = 400,
        code: str = "invalid_value",
        type_: str | None = None,
    ) -> None:
        self.param = param
        self.detail = f"{param}: {detail}" if param and not detail.startswith(f"{param}:") else detail
        body = error_body(self.detail, type_ or error_type(status_code), param, code).decode()
        phrase = _PHRASES.get(status_code, "Client Error")
        super().__init__(status_code, body, phrase)
        # The toolkit reads these three attributes; set them even when the base class is the local fallback.
        self.status_code, self.message, self.phrase = status_code, body, phrase

    def __str__(self) -> str:
        return self.detail

    @classmethod
    def from_wire(cls, err: WireError) -> RequestError:
        """The toolkit error for a :mod:`wire` validation error."""
        return cls(err.param, err.message, err.status, err.code or "invalid_value", err.type)


# ----------------------------------------------------------------------------------------------------------------------
# Requests (input_fn)
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuideParams:
    """The guide form's ``parameters``, checked for type; ranges are the engine's (one set of rules)."""

    max_new_tokens: int | None = None
    min_new_tokens: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    return_full_text: bool = False


@dataclass(frozen=True)
class InferenceRequest:
    """What ``input_fn`` hands to ``predict_fn``.

    ``kind`` ``inputs`` (the guide form) carries ``prompts`` and ``params``; ``chat``/``completion`` carry the
    OpenAI ``body``.
    """

    kind: Literal["inputs", "chat", "completion"]
    prompts: tuple[str, ...] = ()
    single: bool = True
    params: GuideParams = field(default_factory=GuideParams)
    body: dict[str, Any] = field(default_factory=dict)


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _typed(raw: dict[str, Any], name: str, kinds: tuple[type, ...], what: str) -> Any:
    value = raw.get(name)
    if value is None:
        return None
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise RequestError(f"parameters.{name}", f"expected {what}, got {type(value).__name__}")
    return value


def parse_parameters(raw: Any) -> GuideParams:
    """Check the guide form's ``parameters`` object.

    Raises:
        RequestError: an unknown key (``top_k`` and ``repetition_penalty`` are not honoured by the core, so they
            are refused rather than ignored) or a wrong type; the message names ``parameters.<key>``.
    """
    if raw is None:
        return GuideParams()
    if not isinstance(raw, dict):
        raise RequestError("parameters", f"expected an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(GUIDE_PARAMETERS))
    if unknown:
        raise RequestError(
            f"parameters.{unknown[0]}",
            f"unknown parameter; allowed: {', '.join(GUIDE_PARAMETERS)}",
            code="unknown_parameter",
        )
    max_new = _typed(raw, "max_new_tokens", (int,), "an integer")
    min_new = _typed(raw, "min_new_tokens", (int,), "an integer") or 0
    temperature = _typed(raw, "temperature", (int, float), "a number")
    top_p = _typed(raw, "top_p", (int, float), "a number")
    do_sample = _typed(raw, "do_sample", (bool,), "true or false")
    seed = _typed(raw, "seed", (int,), "an integer")
    full = _typed(raw, "return_full_text", (bool,), "true or false")
    stop = raw.get("stop")
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise RequestError("parameters.stop", "expected a string or a list of non-empty strings")
    if do_sample is None:
        # A positive temperature without do_sample is the OpenAI habit for "sample"; 0 or absent means greedy.
        do_sample = temperature is not None and temperature > 0
    if do_sample and temperature == 0:
        raise RequestError("parameters.temperature", "must be > 0 when do_sample is true")
    if seed is not None and not 0 <= seed < SEED_MODULUS:
        raise RequestError("parameters.seed", f"{seed} is out of range (allowed 0..{SEED_MODULUS - 1})")
    return GuideParams(
        max_new_tokens=max_new,
        min_new_tokens=min_new,
        temperature=(1.0 if temperature is None else float(temperature)) if do_sample else 0.0,
        top_p=1.0 if top_p is None else float(top_p),
        stop=tuple(stops),
        seed=seed,
        return_full_text=bool(full),
    )


def _guide_request(payload: dict[str, Any]) -> InferenceRequest:
    unknown = sorted(set(payload) - {"inputs", "parameters"})
    if unknown:
        raise RequestError(unknown[0], "unknown field; allowed: inputs, parameters", code="unknown_field")
    inputs = payload["inputs"]
    if isinstance(inputs, str):
        if not inputs:
            raise RequestError("inputs", "must be a non-empty string")
        prompts, single = (inputs,), True
    elif isinstance(inputs, list):
        if not inputs:
            raise RequestError("inputs", "empty list; give at least one prompt")
        for i, p in enumerate(inputs):
            if not isinstance(p, str) or not p:
                raise RequestError(f"inputs[{i}]", "must be a non-empty string")
        prompts, single = tuple(inputs), False
    else:
        raise RequestError("inputs", f"expected a string or a list of strings, got {type(inputs).__name__}")
    return InferenceRequest("inputs", prompts, single, parse_parameters(payload.get("parameters")))


def parse_request(payload: Any) -> InferenceRequest:
    """Classify and check a decoded JSON body: the guide form, OpenAI chat, or OpenAI completions.

    Raises:
        RequestError: the message names the field (``inputs``, ``inputs[3]``, ``parameters.top_p``, ``stream``...).
    """
    if not isinstance(payload, dict):
        raise RequestError(
            None, f"request body must be a JSON object with inputs, messages or prompt; got {type(payload).__name__}"
        )
    if "inputs" in payload:
        return _guide_request(payload)
    if "messages" in payload or "prompt" in payload:
        if "messages" in payload and "prompt" in payload:
            raise RequestError("messages", "send messages (chat) or prompt (completions), not both")
        kind: Kind = "chat" if "messages" in payload else "completion"
        # The project's one set of OpenAI rules (wire.validate); "model" is optional here: one model per endpoint.
        checked = {"model": SERVED_MODEL_PLACEHOLDER, **payload}
        try:
            if kind == "chat":
                wire_validate.chat_request(checked, OPENAI_LIMITS)
            else:
                wire_validate.completion_request(checked, OPENAI_LIMITS)
        except WireError as err:
            raise RequestError.from_wire(err) from None
        if payload.get("stream"):
            raise RequestError(
                "stream",
                "not supported by invoke_endpoint; send stream: false (or leave it out)",
                code="unsupported_parameter",
            )
        return InferenceRequest(kind, body=payload)
    raise RequestError(
        "inputs",
        "required: inputs (a prompt or a list of prompts), or an OpenAI body with messages or prompt",
        code="missing_field",
    )


def input_fn(input_data: str | bytes | bytearray, content_type: str | None) -> InferenceRequest:
    """Parse and check a JSON request body.

    Raises:
        RequestError: 415 for a content type other than application/json, 400 for bad JSON or fields.
    """
    if _media_type(content_type) != JSON_TYPE:
        raise RequestError(
            "Content-Type", f"{content_type!r} is not supported; send application/json", 415, "unsupported_media_type"
        )
    try:
        text = input_data if isinstance(input_data, str) else bytes(input_data).decode("utf-8")
        payload = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(None, f"request body is not valid UTF-8 JSON: {err}", code="invalid_json") from None
    return parse_request(payload)


# ----------------------------------------------------------------------------------------------------------------------
# The model (model_fn / predict_fn)
# ----------------------------------------------------------------------------------------------------------------------


class Handler:
    """What ``model_fn`` returns: the container limits, the served name and the engine.

    Args:
        model_dir: the unpacked model directory.
        limits: the container limits.
        device: ``cuda:N`` for the worker's GPU, or ``cpu``.
        engine: a ready engine (tests, the shared-engine client); built from the limits when None.
    """

    def __init__(self, model_dir: str, limits: RuntimeLimits, device: str, engine: Any = None) -> None:
        self.limits = limits
        self.model_dir = model_dir
        self.settings = engine_settings(model_dir, limits, device)
        self.model_name = served_model_name(self.settings)
        self.shared: SharedEngine | None = None
        if engine is None and limits.engine_mode == "shared":
            # Workers of one device share one engine (see local.embedded.shared); only the owner loads the model.
            self.shared = open_shared(
                model_dir,
                device,
                lambda: SyncEngine(self.settings),
                limits.engine_connect_timeout_s,
                limits.engine_start_timeout_s,
            )
            engine = self.shared.engine
        self.engine: Any = engine if engine is not None else SyncEngine(self.settings)

    @property
    def dtype(self) -> Any:
        """The compute dtype the engine resolved (for logs and benchmarks)."""
        inner = getattr(self.engine, "engine", None)
        return inner.placement.dtype if inner is not None else self.settings.dtype

    def close(self) -> None:
        """Stop serving other workers and the engine (tests and benchmarks; the container just exits)."""
        if self.shared is not None and self.shared.server is not None:
            self.shared.server.close()
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()

    def _run(self, requests: list[GenerationRequest], params: list[str]) -> list[Generation]:
        try:
            results: list[Generation] = self.engine.generate_many(requests)
        except PromptTooLongError as err:
            raise RequestError(_param(err, params), _detail(err), 413, "input_too_long") from None
        except UnsupportedFieldError as err:
            raise RequestError(_param(err, params), _detail(err), 400, "unsupported_parameter") from None
        except InvalidRequestError as err:
            raise RequestError(_param(err, params), _detail(err)) from None
        except EmbeddedEngineError as err:
            raise RequestError(None, f"engine unavailable: {err}", 503, "engine_unavailable", "server_error") from None
        return results

    def predict(self, req: InferenceRequest) -> dict[str, Any]:
        """Generate for ``req``; returns what ``output_fn`` serialises.

        Raises:
            RequestError: 400 for a field out of the engine's range, 413 for an over-long prompt without
                TRUNCATE_INPUT.
        """
        if req.kind == "inputs":
            return self._predict_inputs(req)
        kind: Kind = req.kind
        body = req.body
        max_tokens = wire_validate.token_limit(body, self.limits.default_max_new_tokens)
        try:
            request = generation_request(body, kind, max_tokens, truncate=self.limits.truncate_input)
        except UnsupportedFieldError as err:
            raise RequestError(err.param, _detail(err), code="unsupported_parameter") from None
        except InvalidRequestError as err:
            raise RequestError(err.param, _detail(err)) from None
        (result,) = self._run([request], ["messages" if kind == "chat" else "prompt"])
        logprobs = logprobs_json(kind, result.logprobs) if request.logprobs is not None else None
        return {"kind": kind, "model": body.get("model") or self.model_name, "result": result, "logprobs": logprobs}

    def _predict_inputs(self, req: InferenceRequest) -> dict[str, Any]:
        if len(req.prompts) > self.limits.max_batch_size:
            raise RequestError(
                "inputs", f"{len(req.prompts)} prompts; at most MAX_BATCH_SIZE={self.limits.max_batch_size} per request"
            )
        p = req.params
        # The guide form caps max_new_tokens at MAX_NEW_TOKENS (as it always has) instead of refusing it.
        max_new = min(p.max_new_tokens or self.limits.default_max_new_tokens, self.limits.max_new_tokens)
        if p.max_new_tokens is not None and p.max_new_tokens < 1:
            raise RequestError("parameters.max_new_tokens", f"{p.max_new_tokens} is out of range (allowed >= 1)")
        requests = [
            GenerationRequest(
                prompt=prompt,
                max_tokens=max_new,
                temperature=p.temperature,
                top_p=p.top_p,
                stop=list(p.stop),
                seed=p.seed,
                min_tokens=min(p.min_new_tokens, max_new),
                truncate=self.limits.truncate_input,
            )
            for prompt in req.prompts
        ]
        names = ["inputs"] if req.single else [f"inputs[{i}]" for i in range(len(req.prompts))]
        results = self._run(requests, names)
        items = [
            {
                "generated_text": (prompt + r.text) if p.return_full_text else r.text,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "finish_reason": r.finish_reason,
            }
            for prompt, r in zip(req.prompts, results, strict=True)
        ]
        return {"kind": "inputs", "single": req.single, "items": items}


# Engine field names -> the guide form's names, for error messages.
_GUIDE_NAMES = {
    "max_tokens": "parameters.max_new_tokens",
    "min_tokens": "parameters.min_new_tokens",
    "temperature": "parameters.temperature",
    "top_p": "parameters.top_p",
    "stop": "parameters.stop",
}


def _param(err: InvalidRequestError, prompt_params: list[str]) -> str:
    """The request field an engine error names, in the caller's terms (``inputs[2]`` for the third prompt)."""
    if err.param in ("prompt", "messages") and prompt_params:
        return prompt_params[0] if len(prompt_params) == 1 else "inputs"
    if prompt_params and prompt_params[0].startswith("inputs"):
        return _GUIDE_NAMES.get(err.param, err.param)
    return err.param


def _detail(err: InvalidRequestError) -> str:
    return str(err).removeprefix(f"{err.param}: ")


def engine_settings(model_dir: str, limits: RuntimeLimits, device: str) -> EmbeddedSettings:
    """The core's settings from the container limits.

    A prompt may use what the model's positions leave after ``MAX_NEW_TOKENS`` when that is less than
    ``MAX_INPUT_TOKENS`` (a 1,024-position model with the defaults accepts 512-token prompts).
    """
    max_input = limits.max_input_tokens
    positions = model_positions_in(Path(model_dir))
    if positions is not None and max_input + limits.max_new_tokens > positions:
        if limits.max_new_tokens >= positions:
            raise ValueError(
                f"MAX_NEW_TOKENS: {limits.max_new_tokens} leaves no room in the model's {positions} positions"
            )
        max_input = positions - limits.max_new_tokens
        LOG.info("MAX_INPUT_TOKENS lowered to %d: the model has %d positions", max_input, positions)
    return EmbeddedSettings(
        model_dir=model_dir,
        model_name=None,
        device="cuda" if device.startswith("cuda") else "cpu",
        dtype=limits.dtype,  # one of DTYPES, checked by read_runtime_env
        max_batch_size=limits.max_batch_size,
        max_input_tokens=max_input,
        max_new_tokens_limit=limits.max_new_tokens,
        compile=limits.compile,
        load_in_4bit=limits.load_in_4bit,
    )


def _device(context: Any) -> str:
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    props = getattr(context, "system_properties", None)
    gpu = int(props["gpu_id"]) if isinstance(props, dict) and props.get("gpu_id") is not None else 0
    torch.cuda.set_device(gpu)
    return f"cuda:{gpu}"


def model_fn(model_dir: str, context: Any = None) -> Handler:
    """Load the model from ``model_dir`` (the unpacked model.tar.gz) and start the engine.

    Args:
        model_dir: directory with config.json, the tokenizer files and the weights.
        context: the toolkit's context (passed because this function takes a second parameter); its
            ``system_properties["gpu_id"]`` picks the GPU of this worker.
    Returns:
        The handler the toolkit passes to ``predict_fn``.
    Raises:
        ValueError: a bad limit in the container environment (names the variable).
    """
    limits = read_runtime_env()
    for name in retired_variables():
        LOG.warning("%s is set but no longer used: the generation core batches continuously", name)
    device = _device(context)
    handler = Handler(model_dir, limits, device)
    LOG.info("loaded %s on %s as %s; limits %s", model_dir, device, handler.dtype, limits)
    return handler


def predict_fn(data: InferenceRequest, model: Handler) -> dict[str, Any]:
    """Generate for a parsed request (concurrent calls share the engine's continuous batch)."""
    return model.predict(data)


def output_fn(prediction: dict[str, Any], accept: str | None) -> tuple[str, str]:
    """Serialise to JSON: the OpenAI shape for OpenAI bodies; the guide form's object or list of objects.

    Returns:
        ``(body, content_type)``; the toolkit sends the tuple's second item as the Content-Type.
    Raises:
        RequestError: 406 when the client accepts neither application/json nor anything.
    """
    media = [_media_type(a) for a in (accept or "").split(",")]
    if not any(m in {"", "*/*", "application/*", JSON_TYPE} for m in media):
        raise RequestError("Accept", f"{accept!r} cannot be produced; accept application/json", 406, "not_acceptable")
    if prediction["kind"] == "inputs":
        items = prediction["items"]
        return json.dumps(items[0] if prediction["single"] else items, ensure_ascii=False), JSON_TYPE
    return json.dumps(openai_body(prediction), ensure_ascii=False), JSON_TYPE


def openai_body(prediction: dict[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` / ``text_completion`` body of a prediction (built by :mod:`wire.build`)."""
    kind, result = prediction["kind"], prediction["result"]
    choice = wire_build.choice(kind, result.text, result.finish_reason, logprobs=prediction["logprobs"])
    return wire_build.completion(kind, prediction["model"], [choice], result.prompt_tokens, result.completion_tokens)
