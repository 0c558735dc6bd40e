"""SageMaker inference handler for causal LMs: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

This file is copied as ``code/inference.py`` into ``model.tar.gz`` and imported by the SageMaker inference toolkit
inside the AWS PyTorch inference container, so it must stay self-contained: it imports only the standard library,
torch and transformers (no other module of this repository exists inside the container).

How the toolkit calls it (sagemaker_inference.transformer.Transformer):
- ``model_fn(model_dir[, context])`` once per worker process; a function with one extra parameter gets the context.
- per request: ``input_fn(body, content_type)`` -> ``predict_fn(data, model)`` -> ``output_fn(prediction, accept)``;
  the body is ``str`` when the Content-Type is exactly ``application/json`` or ``text/csv``, otherwise ``bytes``.
- an exception that subclasses ``BaseInferenceToolkitError`` becomes a response with its ``status_code``; anything
  else becomes a 500. So every bad request raises :class:`RequestError` (4xx) with an OpenAI-style error body.

Limits come from container environment variables (see docs/PACKAGING.md): MAX_INPUT_TOKENS, MAX_NEW_TOKENS,
DEFAULT_MAX_NEW_TOKENS, MAX_BATCH_SIZE, TRUNCATE_INPUT, BATCH_WINDOW_MS, BATCH_MAX_WAIT_MS, DTYPE, ENGINE_MODE,
ENGINE_SOCKET_DIR, ENGINE_START_TIMEOUT_S, ENGINE_CONNECT_TIMEOUT_S.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import queue
import secrets
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection, Listener
from multiprocessing.context import AuthenticationError
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

LOG = logging.getLogger("llm_deploy.inference")

JSON_TYPE = "application/json"

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


class RequestError(_ToolkitError):
    """A client error (4xx): ``message`` is the JSON body ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, param: str | None, detail: str, status_code: int = 400, code: str = "invalid_request") -> None:
        self.param = param
        self.detail = f"{param}: {detail}" if param else detail
        body = {"error": {"message": self.detail, "type": "invalid_request_error", "param": param, "code": code}}
        phrase = {400: "Bad Request", 406: "Not Acceptable", 413: "Payload Too Large", 415: "Unsupported Media Type"}
        super().__init__(status_code, json.dumps(body), phrase.get(status_code, "Client Error"))
        # The toolkit reads these three attributes; set them even when the base class is the local fallback.
        self.status_code = status_code
        self.message = json.dumps(body)
        self.phrase = phrase.get(status_code, "Client Error")

    def __str__(self) -> str:
        return self.detail


# ----------------------------------------------------------------------------------------------------------------------
# Limits (container environment)
# ----------------------------------------------------------------------------------------------------------------------


def _env_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not an integer (allowed {lo}..{hi})") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is out of range (allowed {lo}..{hi})")
    return value


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in {"true", "1", "yes"}:
        return True
    if raw.strip().lower() in {"false", "0", "no"}:
        return False
    raise ValueError(f"{name}: {raw!r} is not a boolean (allowed true|false)")


@dataclass(frozen=True)
class Limits:
    """Per-container limits, read once in ``model_fn`` from the environment."""

    max_input_tokens: int = 1024
    max_new_tokens: int = 512
    default_max_new_tokens: int = 128
    max_batch_size: int = 32
    truncate_input: bool = True
    batch_window_ms: int = 5
    batch_max_wait_ms: int = 50
    dtype: str = "auto"
    engine_mode: str = "local"
    engine_connect_timeout_s: int = 60
    engine_start_timeout_s: int = 900

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        """Read the limits from ``env`` (default ``os.environ``).

        Raises:
            ValueError: a variable that is not a number/boolean or out of range, naming the variable.
        """
        env = os.environ if env is None else env
        dtype = env.get("DTYPE", "auto").strip().lower() or "auto"
        if dtype not in {"auto", "bfloat16", "float16", "float32"}:
            raise ValueError(f"DTYPE: {dtype!r} is not allowed (allowed auto, bfloat16, float16, float32)")
        max_new = _env_int(env, "MAX_NEW_TOKENS", cls.max_new_tokens, 1, 32768)
        engine_mode = env.get("ENGINE_MODE", "local").strip().lower() or "local"
        if engine_mode not in {"local", "shared"}:
            raise ValueError(f"ENGINE_MODE: {engine_mode!r} is not allowed (allowed local, shared)")
        return cls(
            max_input_tokens=_env_int(env, "MAX_INPUT_TOKENS", cls.max_input_tokens, 1, 1_000_000),
            max_new_tokens=max_new,
            default_max_new_tokens=min(
                _env_int(env, "DEFAULT_MAX_NEW_TOKENS", cls.default_max_new_tokens, 1, 32768), max_new
            ),
            max_batch_size=_env_int(env, "MAX_BATCH_SIZE", cls.max_batch_size, 1, 1024),
            truncate_input=_env_bool(env, "TRUNCATE_INPUT", cls.truncate_input),
            batch_window_ms=_env_int(env, "BATCH_WINDOW_MS", cls.batch_window_ms, 0, 1000),
            batch_max_wait_ms=_env_int(env, "BATCH_MAX_WAIT_MS", cls.batch_max_wait_ms, 0, 10_000),
            dtype=dtype,
            engine_mode=engine_mode,
            engine_connect_timeout_s=_env_int(env, "ENGINE_CONNECT_TIMEOUT_S", cls.engine_connect_timeout_s, 1, 3600),
            engine_start_timeout_s=_env_int(env, "ENGINE_START_TIMEOUT_S", cls.engine_start_timeout_s, 1, 7200),
        )


# ----------------------------------------------------------------------------------------------------------------------
# Request parsing (input_fn)
# ----------------------------------------------------------------------------------------------------------------------

ALLOWED_PARAMETERS = (
    "max_new_tokens",
    "min_new_tokens",
    "temperature",
    "top_p",
    "top_k",
    "do_sample",
    "repetition_penalty",
    "stop",
    "seed",
    "return_full_text",
)
MAX_STOP_SEQUENCES = 8
MAX_STOP_CHARS = 256


@dataclass(frozen=True)
class GenerationParams:
    """Validated generation parameters; ``max_new_tokens`` None means the container default."""

    max_new_tokens: int | None = None
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    do_sample: bool = False
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    return_full_text: bool = False


@dataclass(frozen=True)
class InferenceRequest:
    """What ``input_fn`` hands to ``predict_fn``: prompts, whether the caller sent one string, and parameters."""

    prompts: tuple[str, ...]
    single: bool
    params: GenerationParams = field(default_factory=GenerationParams)


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _number(params: Mapping[str, Any], name: str, lo: float, hi: float, lo_open: bool = False) -> float | None:
    if name not in params or params[name] is None:
        return None
    v = params[name]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise RequestError(f"parameters.{name}", f"expected a number, got {type(v).__name__}")
    if (v <= lo if lo_open else v < lo) or v > hi:
        left = "(" if lo_open else "["
        raise RequestError(f"parameters.{name}", f"{v} is out of range (allowed {left}{lo:g}, {hi:g}])")
    return float(v)


def _integer(params: Mapping[str, Any], name: str, lo: int, hi: int) -> int | None:
    if name not in params or params[name] is None:
        return None
    v = params[name]
    if isinstance(v, bool) or not isinstance(v, int):
        raise RequestError(f"parameters.{name}", f"expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise RequestError(f"parameters.{name}", f"{v} is out of range (allowed {lo}..{hi})")
    return v


def _boolean(params: Mapping[str, Any], name: str) -> bool | None:
    if name not in params or params[name] is None:
        return None
    v = params[name]
    if not isinstance(v, bool):
        raise RequestError(f"parameters.{name}", f"expected true or false, got {type(v).__name__}")
    return v


def _stop(params: Mapping[str, Any]) -> tuple[str, ...]:
    v = params.get("stop")
    if v is None:
        return ()
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise RequestError("parameters.stop", "expected a string or a list of strings")
    if len(items) > MAX_STOP_SEQUENCES:
        raise RequestError("parameters.stop", f"{len(items)} sequences; at most {MAX_STOP_SEQUENCES} allowed")
    for s in items:
        if not s or len(s) > MAX_STOP_CHARS:
            raise RequestError("parameters.stop", f"each stop sequence must have 1..{MAX_STOP_CHARS} characters")
    return tuple(items)


def parse_parameters(raw: Any) -> GenerationParams:
    """Validate the ``parameters`` object of a request.

    Raises:
        RequestError: an unknown key, a wrong type or an out-of-range value; the message names the field.
    """
    if raw is None:
        return GenerationParams()
    if not isinstance(raw, dict):
        raise RequestError("parameters", f"expected an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(ALLOWED_PARAMETERS))
    if unknown:
        raise RequestError(
            f"parameters.{unknown[0]}",
            f"unknown parameter; allowed: {', '.join(ALLOWED_PARAMETERS)}",
            code="unknown_parameter",
        )
    max_new = _integer(raw, "max_new_tokens", 1, 1_000_000)
    min_new = _integer(raw, "min_new_tokens", 0, 1_000_000) or 0
    if max_new is not None and min_new > max_new:
        raise RequestError("parameters.min_new_tokens", f"{min_new} > max_new_tokens {max_new}")
    temperature = _number(raw, "temperature", 0.0, 100.0)
    do_sample = _boolean(raw, "do_sample")
    if do_sample is None:
        # A positive temperature without do_sample is the OpenAI habit for "sample"; 0 or absent means greedy.
        do_sample = temperature is not None and temperature > 0
    if do_sample and temperature == 0:
        raise RequestError("parameters.temperature", "must be > 0 when do_sample is true")
    seed = _integer(raw, "seed", 0, 2**32 - 1)
    return GenerationParams(
        max_new_tokens=max_new,
        min_new_tokens=min_new,
        temperature=1.0 if temperature in (None, 0.0) else float(temperature),
        top_p=_number(raw, "top_p", 0.0, 1.0, lo_open=True) or 1.0,
        top_k=_integer(raw, "top_k", 0, 100_000) or 0,
        do_sample=do_sample,
        repetition_penalty=_number(raw, "repetition_penalty", 0.0, 10.0, lo_open=True) or 1.0,
        stop=_stop(raw),
        seed=seed,
        return_full_text=bool(_boolean(raw, "return_full_text")),
    )


def parse_request(payload: Any, max_batch_size: int) -> InferenceRequest:
    """Validate a decoded JSON request ``{"inputs": str | [str, ...], "parameters": {...}}``.

    Raises:
        RequestError: the message names the field (``inputs``, ``inputs[3]``, ``parameters.top_p``, ...).
    """
    if not isinstance(payload, dict):
        raise RequestError(None, f"request body must be a JSON object with 'inputs', got {type(payload).__name__}")
    unknown = sorted(set(payload) - {"inputs", "parameters"})
    if unknown:
        raise RequestError(unknown[0], "unknown field; allowed: inputs, parameters", code="unknown_field")
    if "inputs" not in payload:
        raise RequestError("inputs", "required: a prompt string or a list of prompt strings", code="missing_field")
    inputs = payload["inputs"]
    if isinstance(inputs, str):
        if not inputs:
            raise RequestError("inputs", "must be a non-empty string")
        prompts, single = (inputs,), True
    elif isinstance(inputs, list):
        if not inputs:
            raise RequestError("inputs", f"empty list; give 1..{max_batch_size} prompts")
        if len(inputs) > max_batch_size:
            raise RequestError("inputs", f"{len(inputs)} prompts; at most MAX_BATCH_SIZE={max_batch_size} per request")
        for i, p in enumerate(inputs):
            if not isinstance(p, str) or not p:
                raise RequestError(f"inputs[{i}]", "must be a non-empty string")
        prompts, single = tuple(inputs), False
    else:
        raise RequestError("inputs", f"expected a string or a list of strings, got {type(inputs).__name__}")
    return InferenceRequest(prompts=prompts, single=single, params=parse_parameters(payload.get("parameters")))


# ----------------------------------------------------------------------------------------------------------------------
# Micro-batcher: coalesce concurrent requests into one generate call
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class _Job:
    ids: list[list[int]]
    key: tuple[Any, ...]
    future: Future[list[list[int]]]


class MicroBatcher:
    """One GPU thread that runs ``run_batch`` on requests arriving less than ``window_s`` apart (up to ``max_wait_s``).

    Requests whose generation settings differ (``key``) never share a ``generate`` call; a batch never exceeds
    ``max_batch`` prompts. Callers block on a Future, so any number of server threads may submit at once; when
    calls arrive one at a time (a TorchServe worker) each one simply runs alone after the window.
    """

    def __init__(
        self,
        run_batch: Callable[[tuple[Any, ...], list[list[int]]], list[list[int]]],
        max_batch: int,
        window_s: float,
        max_wait_s: float | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._window_s = window_s
        self._max_wait_s = max(window_s, max_wait_s if max_wait_s is not None else 10 * window_s)
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._carry: list[_Job] = []
        self.batch_sizes: deque[int] = deque(maxlen=1024)  # recent generate() batch sizes, for benchmarks and logs
        self._thread = threading.Thread(target=self._loop, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, key: tuple[Any, ...], ids: list[list[int]]) -> list[list[int]]:
        """Queue ``ids`` (one token list per prompt) and wait for their generated token lists."""
        fut: Future[list[list[int]]] = Future()
        self._queue.put(_Job(ids, key, fut))
        return fut.result()

    def _collect(self) -> list[_Job]:
        jobs = self._carry or [self._queue.get()]
        self._carry = []
        n = sum(len(j.ids) for j in jobs)
        # Wait while requests keep coming (each one re-opens the quiet window), but never past max_wait: a burst of
        # concurrent clients arrives spread over a few ms, and one fixed window would split it into two batches.
        hard_deadline = time.monotonic() + self._max_wait_s
        while n < self._max_batch:
            timeout = min(self._window_s, hard_deadline - time.monotonic())
            try:
                job = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            jobs.append(job)
            n += len(job.ids)
        return jobs

    def _loop(self) -> None:
        while True:
            jobs = self._collect()
            groups: dict[tuple[Any, ...], list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for key, members in groups.items():
                chunk: list[_Job] = []
                size = 0
                for job in members:
                    if chunk and size + len(job.ids) > self._max_batch:
                        self._run(key, chunk)
                        chunk, size = [], 0
                    chunk.append(job)
                    size += len(job.ids)
                if chunk:
                    self._run(key, chunk)

    def _run(self, key: tuple[Any, ...], jobs: list[_Job]) -> None:
        flat = [ids for job in jobs for ids in job.ids]
        self.batch_sizes.append(len(flat))
        try:
            out = self._run_batch(key, flat)
        except BaseException as err:  # the waiting request threads must see the failure, not hang
            for job in jobs:
                job.future.set_exception(err)
            return
        start = 0
        for job in jobs:
            job.future.set_result(out[start : start + len(job.ids)])
            start += len(job.ids)


# ----------------------------------------------------------------------------------------------------------------------
# The model (model_fn / predict_fn)
# ----------------------------------------------------------------------------------------------------------------------


def _pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested != "auto":
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class LMHandler:
    """Tokenizer, limits and a generation engine; what ``model_fn`` returns.

    With ``engine=None`` it loads the model and owns a :class:`MicroBatcher`; otherwise it only tokenizes and sends
    token ids to ``engine`` (a :class:`RemoteEngine`, the GPU loop of another worker process).
    """

    def __init__(self, model_dir: str, limits: Limits, device: torch.device, engine: Any = None) -> None:
        self.limits = limits
        self.device = device
        self.dtype = _pick_dtype(limits.dtype, device)
        tok: Any = AutoTokenizer.from_pretrained(model_dir)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        tok.padding_side = "left"
        self.tokenizer: Any = tok
        self._tok_lock = threading.Lock()  # fast tokenizers are not safe to call from several threads at once
        self.pad_id = int(tok.pad_token_id)
        config: Any = AutoConfig.from_pretrained(model_dir)
        ctx = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.context_len = int(ctx) if ctx else limits.max_input_tokens + limits.max_new_tokens
        self.eos_ids = self._eos_ids(model_dir, config)
        self.model: Any = None
        self.batcher: Any = engine
        self.engine_server: EngineServer | None = None  # set when this process serves other workers
        self.engine_lock_fd: int | None = None
        if engine is None:
            model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.dtype)
            model.to(device)
            model.eval()
            self.model = model
            self.batcher = MicroBatcher(
                self._generate, limits.max_batch_size, limits.batch_window_ms / 1000, limits.batch_max_wait_ms / 1000
            )

    def _eos_ids(self, model_dir: str, config: Any) -> set[int]:
        try:
            eos = GenerationConfig.from_pretrained(model_dir).eos_token_id
        except OSError:  # no generation_config.json
            eos = getattr(config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        ids = eos if isinstance(eos, list) else [eos]
        return {int(i) for i in ids if i is not None}

    def predict(self, req: InferenceRequest) -> dict[str, Any]:
        """Generate for every prompt of ``req``; returns texts, token counts and finish reasons (lists).

        Raises:
            RequestError: a prompt longer than allowed while TRUNCATE_INPUT is false.
        """
        p = req.params
        max_new = min(p.max_new_tokens or self.limits.default_max_new_tokens, self.limits.max_new_tokens)
        min_new = min(p.min_new_tokens, max_new)
        max_in = max(1, min(self.limits.max_input_tokens, self.context_len - max_new))
        with self._tok_lock:
            encoded = [self.tokenizer(prompt, add_special_tokens=True)["input_ids"] for prompt in req.prompts]
        ids: list[list[int]] = []
        for i, toks in enumerate(encoded):
            if len(toks) > max_in:
                if not self.limits.truncate_input:
                    field_name = "inputs" if req.single else f"inputs[{i}]"
                    raise RequestError(
                        field_name,
                        f"{len(toks)} tokens; at most {max_in} allowed (MAX_INPUT_TOKENS, less max_new_tokens "
                        f"within the {self.context_len}-token context); shorten it or set TRUNCATE_INPUT=true",
                        status_code=413,
                        code="input_too_long",
                    )
                toks = toks[-max_in:]  # keep the end: the most recent text matters most to a causal LM
            ids.append(list(toks))
        sampling = (p.temperature, p.top_p, p.top_k) if p.do_sample else ()
        key = (max_new, min_new, p.do_sample, p.repetition_penalty, *sampling, p.seed)
        generated = self.batcher.submit(key, ids)
        return self._postprocess(req, ids, generated, max_new)

    def _postprocess(
        self, req: InferenceRequest, ids: list[list[int]], generated: list[list[int]], max_new: int
    ) -> dict[str, Any]:
        texts: list[str] = []
        completion: list[int] = []
        finish: list[str] = []
        with self._tok_lock:
            for prompt, gen in zip(req.prompts, generated, strict=True):
                hit_eos = bool(gen) and gen[-1] in self.eos_ids
                text: str = self.tokenizer.decode(gen, skip_special_tokens=True)
                reason = "stop" if hit_eos else "length"
                count = len(gen)
                cut = min((text.find(s) for s in req.params.stop if s in text), default=-1)
                if cut >= 0:
                    text = text[:cut]
                    count = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                    reason = "stop"
                texts.append(prompt + text if req.params.return_full_text else text)
                completion.append(count)
                finish.append(reason)
        return {
            "generated_text": texts,
            "prompt_tokens": [len(i) for i in ids],
            "completion_tokens": completion,
            "finish_reason": finish,
            "single": req.single,
        }

    @torch.inference_mode()
    def _generate(self, key: tuple[Any, ...], batch: list[list[int]]) -> list[list[int]]:
        max_new, min_new, do_sample, repetition_penalty = key[0], key[1], key[2], key[3]
        width = max(len(x) for x in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, toks in enumerate(batch):  # left padding: every prompt ends at the same column
            input_ids[row, width - len(toks) :] = torch.tensor(toks, dtype=torch.long)
            attention[row, width - len(toks) :] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "min_new_tokens": min_new,
            "do_sample": do_sample,
            "repetition_penalty": repetition_penalty,
            "pad_token_id": self.pad_id,
        }
        if do_sample:
            kwargs.update(temperature=key[4], top_p=key[5], top_k=key[6])
            seed = key[7]
            if seed is not None:
                torch.manual_seed(seed)  # only this thread calls generate, so the seed is not raced
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = self.model.generate(
            input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device), **kwargs
        )
        new = out[:, width:].tolist()
        result = []
        for row in new:
            toks = []
            for t in row:
                toks.append(t)
                if t in self.eos_ids:
                    break  # what follows is padding written after this row finished
            result.append(toks)
        return result


# ----------------------------------------------------------------------------------------------------------------------
# Shared engine: one GPU loop for all TorchServe worker processes of a device (ENGINE_MODE=shared)
# ----------------------------------------------------------------------------------------------------------------------


class EngineUnavailableError(_ToolkitError):
    """The shared engine (another worker process) is gone; 503 so clients retry while TorchServe restarts it."""

    def __init__(self, detail: str) -> None:
        body = {"error": {"message": detail, "type": "server_error", "param": None, "code": "engine_unavailable"}}
        super().__init__(503, json.dumps(body), "Service Unavailable")
        self.status_code = 503
        self.message = json.dumps(body)
        self.phrase = "Service Unavailable"


@dataclass(frozen=True)
class EnginePaths:
    """Files that let the worker processes of one device find the engine: lock, socket, auth key."""

    lock: Path
    socket: Path
    key: Path

    @classmethod
    def for_model(cls, model_dir: str, device: torch.device, directory: str | None = None) -> EnginePaths:
        base = Path(directory or os.environ.get("ENGINE_SOCKET_DIR") or tempfile.gettempdir())
        tag = hashlib.sha256(f"{os.path.realpath(model_dir)}|{device}".encode()).hexdigest()[:16]
        return cls(base / f"llmd-engine-{tag}.lock", base / f"llmd-engine-{tag}.sock", base / f"llmd-engine-{tag}.key")


class EngineServer:
    """Serves ``batcher.submit`` to other processes over a Unix socket (authenticated with a random key)."""

    def __init__(self, batcher: MicroBatcher, paths: EnginePaths) -> None:
        self._batcher = batcher
        self.paths = paths
        key = secrets.token_bytes(32)
        paths.socket.unlink(missing_ok=True)  # a dead owner's socket; we hold the lock, so it is not in use
        self._listener = Listener(str(paths.socket), family="AF_UNIX", authkey=key)
        os.chmod(paths.socket, 0o600)
        tmp = paths.key.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        os.replace(tmp, paths.key)  # clients read the key only once it is complete
        self._closed = False
        threading.Thread(target=self._accept, name="engine-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, AuthenticationError):
                if self._closed:
                    return
                continue
            threading.Thread(target=self._serve, args=(conn,), name="engine-conn", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    key, ids = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    conn.send(("ok", self._batcher.submit(tuple(key), ids)))
                except Exception as err:
                    conn.send(("error", f"{type(err).__name__}: {err}"))

    def close(self) -> None:
        """Stop accepting and remove the socket and key files."""
        self._closed = True
        self._listener.close()
        self.paths.key.unlink(missing_ok=True)


class RemoteEngine:
    """``submit`` through the engine process's socket; one connection per thread, reconnecting after a failure."""

    def __init__(self, paths: EnginePaths, connect_timeout_s: float) -> None:
        self.paths = paths
        self.connect_timeout_s = connect_timeout_s
        self._local = threading.local()

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the engine accepts a connection (the owner may still be loading the model)."""
        self._local.conn = self._connect(timeout_s)

    def _connect(self, timeout_s: float | None = None) -> Connection:
        timeout_s = self.connect_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return Client(str(self.paths.socket), family="AF_UNIX", authkey=self.paths.key.read_bytes())
            except (OSError, EOFError, AuthenticationError) as err:
                # The owner may still be loading the model (or restarting): wait for its socket and key.
                if time.monotonic() >= deadline:
                    raise EngineUnavailableError(
                        f"the shared engine at {self.paths.socket} did not answer within {timeout_s:g} s ({err})"
                    ) from None
                time.sleep(0.2)

    def submit(self, key: tuple[Any, ...], ids: list[list[int]]) -> list[list[int]]:
        """Generate in the engine process; raises EngineUnavailableError (503) when it is gone."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        try:
            conn.send((list(key), ids))
            status, payload = conn.recv()
        except (EOFError, OSError) as err:
            self._local.conn = None
            raise EngineUnavailableError(f"the shared engine process went away ({type(err).__name__}); retry") from None
        if status != "ok":
            raise RuntimeError(f"shared engine failed: {payload}")
        return list(payload)


def _shared_handler(model_dir: str, limits: Limits, device: torch.device) -> LMHandler:
    """The first worker of a device to take the lock loads the model and serves the others; they only tokenize."""
    paths = EnginePaths.for_model(model_dir, device)
    paths.lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        LOG.info("using the shared engine at %s", paths.socket)
        remote = RemoteEngine(paths, limits.engine_connect_timeout_s)
        # Report ready (model_fn returns, /ping passes) only once the engine answers.
        remote.wait_ready(limits.engine_start_timeout_s)
        return LMHandler(model_dir, limits, device, engine=remote)
    # The lock stays held (fd stays open) for this process's life; the kernel frees it if the process dies, and
    # the worker TorchServe starts in its place takes it over.
    handler = LMHandler(model_dir, limits, device)
    handler.engine_server = EngineServer(handler.batcher, paths)
    handler.engine_lock_fd = fd
    LOG.info("serving the shared engine at %s", paths.socket)
    return handler


def model_fn(model_dir: str, context: Any = None) -> LMHandler:
    """Load the model and tokenizer from ``model_dir`` (the unpacked model.tar.gz).

    Args:
        model_dir: directory with config.json, the tokenizer files and the weights.
        context: the toolkit's context (passed because this function takes a second parameter); its
            ``system_properties["gpu_id"]`` picks the GPU of this worker.
    Returns:
        The handler object the toolkit passes to ``predict_fn``.
    Raises:
        ValueError: a bad limit in the container environment (names the variable).
    """
    limits = Limits.from_env()
    device = torch.device("cpu")
    if torch.cuda.is_available():
        gpu = 0
        props = getattr(context, "system_properties", None)
        if isinstance(props, dict) and props.get("gpu_id") is not None:
            gpu = int(props["gpu_id"])
        device = torch.device("cuda", gpu)
    handler = (
        _shared_handler(model_dir, limits, device)
        if limits.engine_mode == "shared"
        else LMHandler(model_dir, limits, device)
    )
    LOG.info("loaded %s on %s as %s; limits %s", model_dir, device, handler.dtype, limits)
    return handler


def input_fn(input_data: str | bytes | bytearray, content_type: str | None) -> InferenceRequest:
    """Parse and validate a JSON request body.

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
    return parse_request(payload, Limits.from_env().max_batch_size)


def predict_fn(data: InferenceRequest, model: LMHandler) -> dict[str, Any]:
    """Run generation for a parsed request (concurrent calls are coalesced into one ``generate``)."""
    return model.predict(data)


def output_fn(prediction: dict[str, Any], accept: str | None) -> tuple[str, str]:
    """Serialize to JSON: one input -> scalars, a list -> lists.

    Returns:
        ``(body, content_type)``; the toolkit sends the tuple's second item as the Content-Type.
    Raises:
        RequestError: 406 when the client accepts neither application/json nor anything.
    """
    media = [_media_type(a) for a in (accept or "").split(",")]
    if not any(m in {"", "*/*", "application/*", JSON_TYPE} for m in media):
        raise RequestError("Accept", f"{accept!r} cannot be produced; accept application/json", 406, "not_acceptable")
    body = {k: v for k, v in prediction.items() if k != "single"}
    if prediction.get("single"):
        body = {k: v[0] for k, v in body.items()}
    return json.dumps(body, ensure_ascii=False), JSON_TYPE
