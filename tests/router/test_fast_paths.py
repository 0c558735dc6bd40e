"""The shortcuts that keep a decision fast find exactly what the plain passes find.

Byte views (``router.textview``), the digit-run prefilter in front of the number regex, the skip of order numbers
glued to letters, presence-only complexity words and punctuation counted on the views: each is checked against the
slower route it replaces, on fixed cases and on random texts built from the pieces that trigger them.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from router import complexity, detect, normalize
from router.detect import Detector
from router.lexicon import shared
from router.textview import TextView

DETECTION_WORDS = frozenset(detect.EN_WORDS)

NUMBER_PIECES = [
    "4111 1111 1111 1111",
    "13812345678",
    "+86 138-1234-5678",
    "(415) 555-0100",
    "ORD20231128001234",
    "DE89370400440532013000",
    "GB82 WEST 1234 5698 7654 32",
    "GB82WEST12345698765432",
    "XX12ORD12345678901234",
    "11010519491231002X",
    "123-45-6789",
    "+123456",
    "1 2-3 4-5 6 7",
    "1" * 30,
    "AB" + "1" * 35 + "4111111111111111",  # past the 35 digits of one match, a second one (a card)
    "95588",
    "3.85%",
    "2023-11-28",
    "٣٤٥٦٧٨٩",
    "account",
    "order",
    "phone",
    "账号",
    "订单",
    "IBAN",
    "ab",
    "AB",
    "x",
    "X",
]
number_texts = st.lists(
    st.one_of(
        st.sampled_from(NUMBER_PIECES),
        st.text(alphabet="0123456789 -()+xXABDEGR", max_size=12),
    ),
    min_size=1,
    max_size=10,
).map("".join)


def test_view_keeps_offsets_and_marks() -> None:
    text = "Card：4111-1111 (x)? 我叫张伟 a=b|c\td\n"
    view = TextView.of(text)
    assert len(view.low) == len(view.marks) == len(text)
    for i, ch in enumerate(text):
        assert view.low[i] == (ord(ch.lower()) if ch.isascii() else ord("?"))
    assert view.marks.decode() == "aaaa?0000-0000--a-?-????-a=a|a\ta\n"
    assert view.count_questions() == 1  # the views turn 我叫张伟 and "：" into "?" too: the text is counted
    assert not view.ascii and view.lower is None


def test_view_lowers_the_text_where_lower_changes_length() -> None:
    text = "İ card 4111 1111 1111 1111"  # İ.lower() is two characters
    view = TextView.of(text)
    assert view.lower == text.lower()
    (found,) = Detector().scan(text)
    assert (found.type, text[found.start : found.end]) == ("card", "4111 1111 1111 1111")


def test_order_numbers_glued_to_letters_skip_the_regex_but_ibans_do_not() -> None:
    d = Detector()
    for text in ("order ORD20231128001234 shipped", "code AB12345678901234 x", "ref XYZ1234567"):
        assert d.scan(text) == []
    assert [f.type for f in d.scan("to DE89370400440532013000 today")] == ["iban"]
    assert [f.type for f in d.scan("pay GB82WEST12345698765432 now")] == ["iban"]
    assert [f.type for f in d.scan("acct 95588, ref DE89370400440532013000")] == ["iban"]
    assert [f.type for f in d.scan("ref AB" + "1" * detect._NUMBER_MAX_DIGITS + "4111111111111111")] == ["card"]


@settings(max_examples=300, deadline=None)
@given(text=number_texts)
def test_number_prefilter_finds_what_the_whole_text_scan_finds(text: str) -> None:
    view = TextView.of(text)
    fast: list[detect.Finding] = []
    plain: list[detect.Finding] = []
    Detector._numbers(view, fast)
    Detector._numbers(view, plain, plain=True)
    assert fast == plain


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(
        st.one_of(
            st.sampled_from(sorted(set(complexity.EN_WORDS) | {"what", "is", "hello", "my name is", "street"})),
            st.sampled_from(["somewhat", "whatwhat", "what'", "'s", "shows", "how", "show", "break", "-even", "does"]),
            st.sampled_from(["x", "1", "?", "=", "|", "\t", "\n", "我叫", "分析", "？", "×"]),
        ),
        min_size=1,
        max_size=15,
    ).map(lambda parts: "".join(p + (" " if i % 3 else "") for i, p in enumerate(parts)))
)
def test_presence_only_words_and_counts_match_the_full_word_pass(text: str) -> None:
    lex = shared()
    view = TextView.of(text)
    words = lex.words(view)
    en, other = lex.hits_in(view)
    assert words.other == other
    assert words.present == {w for w, _, _ in en}
    assert words.en == [h for h in en if h[0] in DETECTION_WORDS]  # detection needs every occurrence
    shared_route = complexity.features([text], words=[words], views=[view])
    assert shared_route == complexity.features([text]) == complexity.features([text], [text.lower()])


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.one_of(
            st.text(alphabet="ab ?.", max_size=6),
            st.sampled_from(["’", "—", "😀", "é", "我", "我叫", "地址：", "路", "？", "×", "分析", "想", "?"]),
        ),
        max_size=30,
    ).map("".join)
)
def test_other_words_probe_skips_only_texts_without_them(text: str) -> None:
    lex = shared()
    view = TextView.of(text)
    plain = [(m.group(), m.start(), m.end()) for m in lex._other.finditer(text)] if not view.ascii else []
    assert lex.words(view).other == plain


def test_phrase_groups_report_overlapping_phrases() -> None:
    lex = shared()
    for text in ("build an app", "so somewhat's what is", "what are what if", "show the mathshow your"):
        view = TextView.of(text)
        assert lex.words(view).present == {w for w, _, _ in lex.hits_in(view)[0]}
    assert {"build a", "build an"} <= lex.words(TextView.of("build an app")).present


def test_ascii_punctuation_is_counted_on_the_views() -> None:
    text = "a=b^c%d+e/f? x|y\tz\n1. one\n2. two？×"
    f = complexity.features([text])
    assert f["math"] == math.log1p((5 + 1) / 2)  # = ^ % + / and ×
    assert f["asks"] == math.log1p(2 + 0.5 * 2)  # ? and ？, plus two numbered lines
    assert f["document"] == math.log1p(2 / 4 + 1 / 6 + 1 / 4)  # two lines, one |, one tab


def test_legacy_word_api_matches_views() -> None:
    lex = shared()
    text = "My name is Li. What's the IBAN? 我叫张伟"
    assert lex.hits(text, text.lower()) == lex.hits_in(TextView.of(text))


def _at_starts_reference(low: bytes) -> set[int]:
    """One search through the whole text per needle: what normalize._at_starts replaces."""
    starts: set[int] = set()
    for needle in normalize._AT_FINDS:
        i = low.find(needle)
        while i >= 0:
            starts.add(i)
            i = low.find(needle, i + 1)
    return starts


AT_PIECES = [" at ", "at", " at\t", "\tat", "[at]", "(at)", "{at}", "<at>", "[at)", "@", " @", "@ ", "that", "x", "  "]


@given(text=st.lists(st.sampled_from(AT_PIECES), max_size=30).map("".join))
@settings(max_examples=300, deadline=None)
def test_at_starts_match_one_search_per_needle(text: str) -> None:
    low = text.encode()
    assert normalize._at_starts(low) == _at_starts_reference(low)
