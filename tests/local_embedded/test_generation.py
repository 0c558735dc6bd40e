"""The engine against transformers' own ``generate`` on the tiny models: same tokens, whatever the batch."""

from __future__ import annotations

import asyncio
import functools
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from local.embedded.api import GenerationRequest
from local.embedded.engine import EmbeddedEngine
from tests.local_embedded.conftest import MAX_BATCH, collect, run, start_engine

PROMPTS = [
    "Hello, how are you?",
    "The quick brown fox jumps over the lazy dog. Deploy the model to SageMaker and serve it locally with vLLM.",
    "写一首关于秋天的诗。",
    "What",
    "Explain quantum computing in simple terms. Write a Python function that sorts a list.",
    "你好，请问今天的天气怎么样？ The answer is 42.",
]


@functools.cache
def _reference(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir)


def greedy_reference(model_dir: Path, ids: list[int], max_new: int) -> tuple[str, int, str]:
    """``model.generate(do_sample=False)``: (text, generated token count, finish reason)."""
    model, tokenizer = _reference(model_dir)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False)
    new = out[0, len(ids) :].tolist()
    eos = model.generation_config.eos_token_id
    if eos in new:
        new = new[: new.index(eos) + 1]
        return tokenizer.decode(new, skip_special_tokens=True), len(new), "stop"
    return tokenizer.decode(new, skip_special_tokens=True), len(new), "length"


def _ids(engine: EmbeddedEngine, prompt: str) -> list[int]:
    return engine.prompt_token_ids(GenerationRequest(prompt=prompt))


def test_single_request_equals_generate(engine: EmbeddedEngine) -> None:
    request = GenerationRequest(prompt=PROMPTS[0], max_tokens=40, temperature=0.0)
    text, chunks = run(collect(engine, request))
    ref_text, ref_n, ref_reason = greedy_reference(engine.settings.model_dir, _ids(engine, PROMPTS[0]), 40)
    assert text == ref_text
    last = chunks[-1]
    assert (last.finish_reason, last.completion_tokens) == (ref_reason, ref_n)
    assert last.prompt_tokens == len(_ids(engine, PROMPTS[0]))
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_batched_staggered_requests_each_equal_generate(engine: EmbeddedEngine) -> None:
    # More requests than slots, arriving at different times, prompts of different lengths: each one joins a batch
    # that is already decoding other sequences at other positions, and must still match its solo reference.
    rng = random.Random(7)
    jobs = [(p, rng.choice([5, 17, 33, 48])) for p in PROMPTS * 2]

    async def one(prompt: str, max_new: int, delay: float) -> tuple[str, Any]:
        await asyncio.sleep(delay)
        text, chunks = await collect(engine, GenerationRequest(prompt=prompt, max_tokens=max_new, temperature=0.0))
        return text, chunks[-1]

    async def scenario() -> list[tuple[str, Any]]:
        return await asyncio.gather(*(one(p, n, 0.003 * i) for i, (p, n) in enumerate(jobs)))

    assert len(jobs) > MAX_BATCH
    results = run(scenario())
    for (prompt, max_new), (text, last) in zip(jobs, results, strict=True):
        ref_text, ref_n, ref_reason = greedy_reference(engine.settings.model_dir, _ids(engine, prompt), max_new)
        assert (text, last.completion_tokens, last.finish_reason) == (ref_text, ref_n, ref_reason), prompt
    assert engine.slots_in_use() == 0


def test_chat_uses_the_chat_template(gpt2_engine: EmbeddedEngine) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, how are you?"}]
    _, tokenizer = _reference(gpt2_engine.settings.model_dir)
    expected_ids = tokenizer(
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), add_special_tokens=False
    )["input_ids"]
    request = GenerationRequest(messages=messages, max_tokens=20, temperature=0.0)
    assert gpt2_engine.prompt_token_ids(request) == expected_ids
    text, chunks = run(collect(gpt2_engine, request))
    ref_text, ref_n, _ = greedy_reference(gpt2_engine.settings.model_dir, expected_ids, 20)
    assert (text, chunks[-1].completion_tokens) == (ref_text, ref_n)
    assert chunks[-1].prompt_tokens == len(expected_ids)


@pytest.mark.parametrize("max_tokens", [1, 2, 13])
def test_max_tokens_is_honoured(gpt2_engine: EmbeddedEngine, max_tokens: int) -> None:
    text, chunks = run(collect(gpt2_engine, GenerationRequest(prompt=PROMPTS[1], max_tokens=max_tokens, temperature=0)))
    ref_text, ref_n, ref_reason = greedy_reference(
        gpt2_engine.settings.model_dir, _ids(gpt2_engine, PROMPTS[1]), max_tokens
    )
    assert (chunks[-1].completion_tokens, chunks[-1].finish_reason, text) == (ref_n, ref_reason, ref_text)
    assert chunks[-1].completion_tokens <= max_tokens


def test_stop_string_cuts_output_and_is_never_streamed(engine: EmbeddedEngine) -> None:
    prompt = PROMPTS[4]
    full, _ = run(collect(engine, GenerationRequest(prompt=prompt, max_tokens=48, temperature=0.0)))
    assert len(full) > 12, "the tiny model should produce some text"
    stop = full[8:11]
    expected = full[: full.find(stop)]
    text, chunks = run(collect(engine, GenerationRequest(prompt=prompt, max_tokens=48, temperature=0.0, stop=[stop])))
    assert text == expected
    assert chunks[-1].finish_reason == "stop"
    assert stop not in text
    # Never stream a piece that the stop string then swallows: every chunk is a prefix piece of the final text.
    assert "".join(c.text for c in chunks) == expected


def test_stop_string_absent_finishes_by_length(gpt2_engine: EmbeddedEngine) -> None:
    text, chunks = run(
        collect(gpt2_engine, GenerationRequest(prompt=PROMPTS[0], max_tokens=10, temperature=0, stop=["\x00never"]))
    )
    ref_text, ref_n, ref_reason = greedy_reference(gpt2_engine.settings.model_dir, _ids(gpt2_engine, PROMPTS[0]), 10)
    assert (text, chunks[-1].finish_reason, chunks[-1].completion_tokens) == (ref_text, ref_reason, ref_n)


def test_seed_reproducible_whatever_the_batch(engine: EmbeddedEngine) -> None:
    sampled = GenerationRequest(prompt=PROMPTS[2], max_tokens=24, temperature=1.0, top_p=0.9, seed=1234)

    async def alone() -> str:
        return (await collect(engine, sampled))[0]

    async def crowded() -> str:
        others = [
            collect(engine, GenerationRequest(prompt=p, max_tokens=30, temperature=0.7, seed=i))
            for i, p in enumerate(PROMPTS[:3])
        ]
        results = await asyncio.gather(*others, collect(engine, sampled))
        return results[-1][0]

    first, second, third = run(alone()), run(crowded()), run(alone())
    assert first == second == third
    other_seeds = {run(collect(engine, GenerationRequest(**{**sampled.__dict__, "seed": s})))[0] for s in range(5)}
    assert len(other_seeds) > 1, "different seeds should give different samples"


def test_tiny_top_p_is_greedy(gpt2_engine: EmbeddedEngine) -> None:
    greedy, _ = run(collect(gpt2_engine, GenerationRequest(prompt=PROMPTS[1], max_tokens=20, temperature=0)))
    nucleus, _ = run(
        collect(gpt2_engine, GenerationRequest(prompt=PROMPTS[1], max_tokens=20, temperature=1.5, top_p=1e-6, seed=3))
    )
    assert nucleus == greedy


def test_many_concurrent_requests_all_complete(gpt2_engine: EmbeddedEngine) -> None:
    requests = [GenerationRequest(prompt=PROMPTS[i % len(PROMPTS)], max_tokens=8 + i % 5, seed=i) for i in range(24)]

    async def scenario() -> list[tuple[str, Any]]:
        return await asyncio.gather(*(collect(gpt2_engine, r) for r in requests))

    results = run(scenario())
    assert len(results) == 24
    for request, (_, chunks) in zip(requests, results, strict=True):
        last = chunks[-1]
        assert last.prompt_tokens == len(gpt2_engine.prompt_token_ids(request))
        if last.finish_reason == "length":
            assert last.completion_tokens == request.max_tokens
        else:
            assert last.finish_reason == "stop"  # the model emitted EOS before the limit
            assert 1 <= last.completion_tokens <= request.max_tokens
    assert gpt2_engine.slots_in_use() == 0


def test_grouped_decode_attention_engine_equals_generate(model_dirs: dict[str, Path]) -> None:
    # The GPU default (attn "slot": grouped-KV decode attention) run on CPU: the tiny Llama has 2 query heads per
    # KV head, so this checks the head grouping end to end against transformers' own attention.
    engine = start_engine(model_dirs["llama"], attn_implementation="slot")
    try:
        assert engine.placement.device.type == "cpu"
        for prompt in PROMPTS[:3]:
            text, chunks = run(collect(engine, GenerationRequest(prompt=prompt, max_tokens=24, temperature=0.0)))
            ref_text, ref_n, _ = greedy_reference(model_dirs["llama"], _ids(engine, prompt), 24)
            assert (text, chunks[-1].completion_tokens) == (ref_text, ref_n)
    finally:
        run(engine.stop())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_cuda_engine_equals_generate(model_dirs: dict[str, Path]) -> None:
    engine = start_engine(model_dirs["llama"], device="cuda", dtype="float32")
    try:
        assert engine.compiled, engine.compile_error
        text, chunks = run(collect(engine, GenerationRequest(prompt=PROMPTS[1], max_tokens=24, temperature=0.0)))
        ref_text, ref_n, _ = greedy_reference(model_dirs["llama"], _ids(engine, PROMPTS[1]), 24)
        assert (text, chunks[-1].completion_tokens) == (ref_text, ref_n)
    finally:
        run(engine.stop())
