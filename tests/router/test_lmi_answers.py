"""The cloud target accepts an LMI (vLLM rolling-batch) chat answer, whose finish reasons are LMI's own words."""

from __future__ import annotations

import json

import pytest

from router.errors import TargetUnavailable
from router.translate import from_endpoint


def _answer(reason: str) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": reason}
    return json.dumps({"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()


@pytest.mark.parametrize(("lmi", "openai"), [("eos_token", "stop"), ("stop_sequence", "stop"), ("length", "length")])
def test_lmi_finish_reason_is_mapped(lmi: str, openai: str) -> None:
    assert from_endpoint(_answer(lmi), "m")["choices"][0]["finish_reason"] == openai


def test_unknown_finish_reason_is_still_refused() -> None:
    with pytest.raises(TargetUnavailable):
        from_endpoint(_answer("mystery"), "m")
