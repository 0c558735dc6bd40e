"""The handler end to end through the local container-contract server, started for real from a built package."""

from __future__ import annotations

import io
import json
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from inference.inference import RequestError, input_fn, model_fn, predict_fn
from inference.serve import UnsafeArchiveError, safe_extract


def _post(
    url: str, payload: Any, content_type: str = "application/json", path: str = "/invocations"
) -> requests.Response:
    data = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return requests.post(f"{url}{path}", data=data, headers={"Content-Type": content_type}, timeout=60)


def test_ping(served: str) -> None:
    r = requests.get(f"{served}/ping", timeout=5)
    assert r.status_code == 200


def test_single_prompt(served: str) -> None:
    r = _post(served, {"inputs": "Hello, how are you?", "parameters": {"max_new_tokens": 5, "min_new_tokens": 5}})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) == {"generated_text", "prompt_tokens", "completion_tokens", "finish_reason"}
    assert isinstance(body["generated_text"], str) and body["generated_text"]
    assert body["completion_tokens"] == 5
    assert body["prompt_tokens"] > 0
    assert body["finish_reason"] == "length"


def test_list_is_batched_and_answered_as_a_list_of_objects(served: str) -> None:
    prompts = ["Hello", "The quick brown fox jumps over the lazy dog.", "你好"]
    r = _post(served, {"inputs": prompts, "parameters": {"max_new_tokens": 4, "min_new_tokens": 4}})
    assert r.status_code == 200
    body = r.json()
    # The Hugging Face containers' shape: one object per input, in order.
    assert isinstance(body, list) and len(body) == 3
    assert [set(item) for item in body] == [
        {"generated_text", "prompt_tokens", "completion_tokens", "finish_reason"}
    ] * 3
    assert [item["completion_tokens"] for item in body] == [4, 4, 4]
    assert body[1]["prompt_tokens"] > body[0]["prompt_tokens"]
    # Batched with others, each prompt's continuation equals what it gets alone (greedy).
    alone = _post(served, {"inputs": prompts[1], "parameters": {"max_new_tokens": 4, "min_new_tokens": 4}}).json()
    assert body[1]["generated_text"] == alone["generated_text"]


def test_max_new_tokens_is_capped_and_defaulted(served: str) -> None:
    capped = _post(served, {"inputs": "Hello", "parameters": {"max_new_tokens": 500, "min_new_tokens": 500}}).json()
    assert capped["completion_tokens"] == 32  # MAX_NEW_TOKENS=32 in the fixture
    default = _post(served, {"inputs": "Hello", "parameters": {"min_new_tokens": 8}}).json()
    assert default["completion_tokens"] == 8  # DEFAULT_MAX_NEW_TOKENS=8


def test_return_full_text_and_stop(served: str) -> None:
    params = {"max_new_tokens": 6, "min_new_tokens": 6}
    plain = _post(served, {"inputs": "Hello", "parameters": params}).json()["generated_text"]
    full = _post(served, {"inputs": "Hello", "parameters": {**params, "return_full_text": True}}).json()
    assert full["generated_text"] == "Hello" + plain
    stop = plain[2:4]
    cut = _post(served, {"inputs": "Hello", "parameters": {**params, "stop": [stop]}}).json()
    assert cut["generated_text"] == plain[: plain.find(stop)]
    assert cut["finish_reason"] == "stop"
    assert cut["completion_tokens"] <= 6


def test_seeded_sampling_is_reproducible(served: str) -> None:
    params = {"max_new_tokens": 8, "do_sample": True, "temperature": 1.0, "top_p": 0.9, "seed": 42}
    a = _post(served, {"inputs": "Hello", "parameters": params}).json()["generated_text"]
    b = _post(served, {"inputs": "Hello", "parameters": params}).json()["generated_text"]
    assert a == b


def test_concurrent_requests_are_all_answered_correctly(served: str) -> None:
    params = {"max_new_tokens": 4, "min_new_tokens": 4}
    prompts = [f"Explain quantum computing ({i})" for i in range(12)]
    expected = [item["generated_text"] for item in _post(served, {"inputs": prompts[:8], "parameters": params}).json()]
    expected += [item["generated_text"] for item in _post(served, {"inputs": prompts[8:], "parameters": params}).json()]
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda p: _post(served, {"inputs": p, "parameters": params}), prompts))
    assert [r.status_code for r in responses] == [200] * 12
    assert [r.json()["generated_text"] for r in responses] == expected
    assert all(r.json()["completion_tokens"] == 4 for r in responses)


@pytest.mark.parametrize(
    ("payload", "content_type", "status", "param"),
    [
        (b"{not json", "application/json", 400, None),
        ({"inputs": "x"}, "text/plain", 415, "Content-Type"),
        ({"parameters": {}}, "application/json", 400, "inputs"),
        ({"inputs": []}, "application/json", 400, "inputs"),
        ({"inputs": ["a"] * 9}, "application/json", 400, "inputs"),  # MAX_BATCH_SIZE=8 in the fixture
        ({"inputs": "x", "parameters": {"top_p": 2}}, "application/json", 400, "parameters.top_p"),
        ({"inputs": "x", "parameters": {"temperature": 3.5}}, "application/json", 400, "parameters.temperature"),
        ({"inputs": "x", "parameters": {"max_new_tokens": 0}}, "application/json", 400, "parameters.max_new_tokens"),
        ({"inputs": "x", "parameters": {"stop": ["a"] * 5}}, "application/json", 400, "parameters.stop"),
        ({"inputs": "x", "parameters": {"beam_width": 2}}, "application/json", 400, "parameters.beam_width"),
        ({"prompt": "x", "max_tokens": 33}, "application/json", 400, "max_tokens"),  # over MAX_NEW_TOKENS=32
        ({"prompt": "x", "echo": True}, "application/json", 400, "echo"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "application/json",
            400,
            "tools",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]},
            "application/json",
            400,
            "messages[0].content[0].type",
        ),
    ],
)
def test_bad_input_is_a_4xx_with_an_error_body(
    served: str, payload: Any, content_type: str, status: int, param: str | None
) -> None:
    r = _post(served, payload, content_type)
    assert r.status_code == status
    # Like the real toolkit: the handler's message first, then the traceback.
    error = json.loads(r.text.split("\n", 1)[0])["error"]
    assert error["param"] == param
    assert error["message"]
    assert requests.get(f"{served}/ping", timeout=5).status_code == 200  # the server survived


def test_runtime_route_wraps_errors_as_model_error(served: str) -> None:
    r = _post(served, {"inputs": ""}, path="/endpoints/my-endpoint/invocations")
    assert r.status_code == 424
    assert r.headers["x-amzn-ErrorType"].startswith("ModelError")
    assert r.json()["OriginalStatusCode"] == 400


def test_unknown_route_and_oversized_body(served: str) -> None:
    assert requests.get(f"{served}/nope", timeout=5).status_code == 404
    r = requests.post(
        f"{served}/invocations",
        data=b"x" * (6 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413


def test_over_long_input_truncates_or_rejects(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 20
    monkeypatch.setenv("MAX_INPUT_TOKENS", "16")
    monkeypatch.setenv("TRUNCATE_INPUT", "true")
    model = model_fn(str(tiny_model_dir))
    req = input_fn(json.dumps({"inputs": long_prompt, "parameters": {"max_new_tokens": 2}}), "application/json")
    assert predict_fn(req, model)["items"][0]["prompt_tokens"] == 16
    model.close()
    monkeypatch.setenv("TRUNCATE_INPUT", "false")
    strict = model_fn(str(tiny_model_dir))
    with pytest.raises(RequestError) as info:
        predict_fn(req, strict)
    strict.close()
    assert info.value.status_code == 413
    assert "inputs:" in str(info.value)
    assert "at most 16" in str(info.value)


def _tar_with(member: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buf.getvalue()


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../escape.txt"),
        tarfile.TarInfo("/abs/escape.txt"),
        tarfile.TarInfo("code/../../escape.txt"),
    ],
)
def test_unpacking_rejects_path_traversal(tmp_path: Path, member: tarfile.TarInfo) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(_tar_with(member))
    dest = tmp_path / "out" / "inner"
    dest.mkdir(parents=True)
    with pytest.raises(UnsafeArchiveError, match="outside"):
        safe_extract(bad, dest)
    assert not list((tmp_path / "out").rglob("escape.txt"))
    assert not (tmp_path / "escape.txt").exists()


def test_unpacking_rejects_links(tmp_path: Path) -> None:
    link = tarfile.TarInfo("config.json")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(_tar_with(link))
    with pytest.raises(UnsafeArchiveError, match="link"):
        safe_extract(bad, tmp_path / "out")


def test_serve_refuses_an_unsafe_package(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(_tar_with(tarfile.TarInfo("../escape.txt")))
    proc = subprocess.run(
        [sys.executable, "-m", "inference.serve", "--package", str(bad), "--port", "0", "--workdir", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "outside the package" in proc.stderr


def test_openai_chat_uses_the_chat_template_and_answers_openai(served: str, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, how are you?"}]
    r = _post(served, {"messages": messages, "max_tokens": 5, "temperature": 0, "ignore_eos": True})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "tiny-smoke-test-gpt2"
    (choice,) = body["choices"]
    assert (choice["message"]["role"], choice["finish_reason"]) == ("assistant", "length")
    expected = AutoTokenizer.from_pretrained(tiny_model_dir).apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    assert body["usage"] == {"prompt_tokens": len(expected), "completion_tokens": 5, "total_tokens": len(expected) + 5}


def test_openai_completion_with_logprobs(served: str) -> None:
    r = _post(served, {"prompt": "Hello", "max_tokens": 4, "temperature": 0, "logprobs": 2, "min_tokens": 4})
    assert r.status_code == 200
    (choice,) = r.json()["choices"]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 4
    assert "".join(lp["tokens"]) == choice["text"]
    for chosen, top in zip(lp["token_logprobs"], lp["top_logprobs"], strict=True):
        assert len(top) == 2
        assert chosen <= 0 and abs(chosen - max(top.values())) < 1e-4  # greedy picks the most likely token
