"""Property: under ``local_only``, whatever the request holds and whichever targets fail, no request in which
detection finds sensitive data ever reaches the cloud client."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from router.detect import default_detector
from router.errors import TargetUnavailable
from router.handler import Router
from router.settings import Settings

PII = [
    "4111 1111 1111 1111",
    "13812345678",
    "jane@example.com",
    "11010519491231002X",
    "my name is Li Wei",
    "我叫张伟",
    "IBAN GB82 WEST 1234 5698 7654 32",
    "SSN 123-45-6789",
    "地址：北京市朝阳区建国路88号",
]
FILLER = [
    "Derive and prove the payment formula",
    "analyze and compare three scenarios",
    "what are your hours?",
    "请逐步推导并证明",
    "rate 3.85%",
    "order 4111111111111111",
    "95588",
    "hello",
]


class FlakyTarget:
    def __init__(self, name: str, fail: list[bool]) -> None:
        self.name = name
        self.fail = fail
        self.seen: list[dict[str, Any]] = []

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        self.seen.append(body)
        if self.fail and self.fail.pop(0):
            raise TargetUnavailable(f"{self.name} down")
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


pieces = st.lists(
    st.one_of(st.sampled_from(PII), st.sampled_from(FILLER), st.text(max_size=40)), min_size=1, max_size=6
)
messages = st.lists(pieces.map(" ".join), min_size=1, max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=messages,
    local_fail=st.lists(st.booleans(), max_size=8),
    cloud_fail=st.lists(st.booleans(), max_size=8),
    hint=st.sampled_from([None, "local", "cloud"]),
)
def test_sensitive_never_reaches_cloud(
    texts: list[str], local_fail: list[bool], cloud_fail: list[bool], hint: str | None
) -> None:
    local, cloud = FlakyTarget("local", local_fail), FlakyTarget("cloud", cloud_fail)
    router = Router(Settings(policy="local_only", breaker_failures=2), local=local, cloud=cloud)
    for text in texts:
        body = {"model": "bank-bot", "messages": [{"role": "user", "content": text}]}
        evt = {
            "rawPath": "/v1/chat/completions",
            "requestContext": {"http": {"method": "POST"}},
            "headers": {"x-route": hint} if hint else {},
            "body": json.dumps(body),
        }
        resp = router.handle(evt)
        assert resp["statusCode"] in (200, 503)
    detector = default_detector()
    for sent in cloud.seen:
        for msg in sent["messages"]:
            assert detector.scan(msg["content"]) == [], "sensitive text reached the cloud client"


def _table_words() -> list[str]:
    from router import complexity, detect

    return sorted(set(detect.EN_WORDS) | set(complexity.EN_WORDS))


ascii_tokens = st.one_of(
    st.sampled_from(_table_words()),
    st.sampled_from(["John Smith", "12 Baker Street", "1985-03-12", "E12345678", "gmail", "com", "hello", "the"]),
    st.sampled_from(["张伟", "请", "地址", "，", "。"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=8),
)
ascii_texts = st.lists(
    st.tuples(ascii_tokens, st.sampled_from([" ", ", ", ". ", "\n", ": ", " - ", ""])), min_size=1, max_size=20
).map(
    # Table words are matched as whole words: glue ("xname") only where one side is Chinese ("请call me").
    lambda parts: "".join(tok + (sep if sep or not tok.isascii() else " ") for tok, sep in parts)
)


@settings(max_examples=200, deadline=None)
@given(text=ascii_texts)
@example(text="this is mr. John Smith ")
def test_word_route_finds_what_the_regex_route_finds(text: str) -> None:
    from router.lexicon import shared

    lex = shared()
    low = text.lower()
    fast = lex.hits(text, low)
    full_en = lex.regex_hits(low)
    detector = default_detector()
    by_words = detector.scan(text, low, fast)
    by_regex = detector.scan(text, low, (full_en, fast[1]))
    # The regex route reports no word inside another ("mr" inside "this is mr"), the word route every occurrence: it
    # may find more ("this is mr. John Smith": the title "mr" names him), never less.
    for f in by_regex:
        assert any(g.type == f.type and g.start <= f.start and f.end <= g.end for g in by_words), (text, f)
    hidden = [w for w in fast[0] if w not in full_en and any(s <= w[1] and w[2] <= e for _, s, e in full_en)]
    if not hidden:
        assert by_words == by_regex
