"""min_tokens, ignore_eos, logprobs and the CPU decode step's rows, on a tiny model whose end-of-sequence token is
made to be the token it greedily produces first (so a plain request stops at once and the options visibly matter)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from local.embedded.api import GenerationRequest
from local.embedded.engine import EmbeddedEngine
from local.embedded.errors import InvalidRequestError, UnsupportedFieldError
from local.embedded.openai import check_supported, generation_request
from tests.local_embedded.conftest import collect, run, start_engine

PROMPT = "The quick brown fox"


def _first_greedy_token(model_dir: Path) -> tuple[int, torch.Tensor]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = AutoTokenizer.from_pretrained(model_dir)(PROMPT)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    return int(torch.argmax(logits)), torch.log_softmax(logits.float(), dim=-1)


@pytest.fixture(scope="module")
def eos_first(model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    """(engine, eos token, reference log-probabilities of the first step) for the llama tiny model."""
    src = model_dirs["llama"]
    token, logp = _first_greedy_token(src)
    model_dir = tmp_path_factory.mktemp("eos-first") / "llama"
    shutil.copytree(src, model_dir)
    gen = json.loads((model_dir / "generation_config.json").read_text())
    gen["eos_token_id"] = token
    (model_dir / "generation_config.json").write_text(json.dumps(gen))
    engine = start_engine(model_dir)
    yield engine, token, logp
    run(engine.stop())


def _greedy(**fields: Any) -> GenerationRequest:
    return GenerationRequest(**{"prompt": PROMPT, "max_tokens": 12, "temperature": 0.0, **fields})


def test_plain_request_stops_at_the_eos(eos_first: tuple[Any, ...]) -> None:
    engine, _, _ = eos_first
    _, chunks = run(collect(engine, _greedy()))
    assert (chunks[-1].finish_reason, chunks[-1].completion_tokens) == ("stop", 1)


def test_min_tokens_rules_out_the_eos_until_reached(eos_first: tuple[Any, ...]) -> None:
    engine, _, _ = eos_first
    _, chunks = run(collect(engine, _greedy(min_tokens=6)))
    assert chunks[-1].completion_tokens >= 6


def test_ignore_eos_generates_to_max_tokens(eos_first: tuple[Any, ...]) -> None:
    engine, _, _ = eos_first
    _, chunks = run(collect(engine, _greedy(ignore_eos=True)))
    assert (chunks[-1].finish_reason, chunks[-1].completion_tokens) == ("length", 12)


def test_logprobs_are_the_models(eos_first: tuple[Any, ...]) -> None:
    engine, token, logp = eos_first
    _, chunks = run(collect(engine, _greedy(ignore_eos=True, logprobs=3, max_tokens=4)))
    entries = [e for c in chunks for e in c.logprobs]
    assert len(entries) == 4
    first = entries[0]
    assert abs(first.logprob - float(logp[token])) < 1e-4
    best = torch.topk(logp, 3)
    assert [round(lp, 4) for _, lp in first.top] == [round(float(v), 4) for v in best.values]
    assert all(len(e.top) == 3 and e.logprob <= 0 for e in entries)


def test_option_ranges_are_checked(eos_first: tuple[Any, ...]) -> None:
    engine, _, _ = eos_first
    for request, param in ((_greedy(min_tokens=13), "min_tokens"), (_greedy(logprobs=21), "top_logprobs")):
        with pytest.raises(InvalidRequestError) as info:
            run(collect(engine, request))
        assert info.value.param == param


def test_one_request_decodes_one_row(model_dirs: dict[str, Path]) -> None:
    """On CPU a step runs the rows up to the highest occupied slot, not every slot (before: all 4+1 rows)."""
    engine: EmbeddedEngine = start_engine(model_dirs["llama"])
    rows: list[int] = []
    model = engine._model

    def record(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1:
            rows.append(int(ids.shape[0]))

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        run(collect(engine, GenerationRequest(prompt=PROMPT, max_tokens=8, temperature=0.0, ignore_eos=True)))
    finally:
        handle.remove()
        run(engine.stop())
    assert rows and set(rows) == {1}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"echo": True}, "echo"),
        ({"frequency_penalty": 0.1}, "frequency_penalty"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"id": "1"}]}]}, "messages[0].tool_calls"),
    ],
)
def test_unhonourable_fields_are_refused_by_name(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFieldError) as info:
        check_supported(body)
    assert info.value.param == param


def test_neutral_values_are_accepted() -> None:
    body = {"prompt": "x", "echo": False, "tools": [], "presence_penalty": 0, "best_of": 1, "tool_choice": "none"}
    request = generation_request(body, "completion", 5)
    assert (request.prompt, request.max_tokens, request.logprobs) == ("x", 5, None)
    chat = generation_request({"messages": [{"role": "user", "content": "hi"}], "logprobs": True}, "chat", 3)
    assert (chat.messages, chat.logprobs) == ([{"role": "user", "content": "hi"}], 0)
