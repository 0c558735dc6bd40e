"""The shortcuts that keep a decision fast find exactly what the plain passes find.

Byte views (``router.textview``), the digit-run prefilter in front of the number regex, the skip of order numbers
glued to letters, presence-only complexity words and punctuation counted on the views: each is checked against the
slower route it replaces, on fixed cases and on random texts built from the pieces that trigger them.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.router import prompt
from router import complexity, detect, lexicon, normalize, variants
from router.decision import Decider
from router.detect import Detector
from router.lexicon import Lexicon, shared
from router.protocol import parse_request
from router.settings import Settings
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
    plain = lex.other_reference(text) if not view.ascii else []
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


# ---------------------------------------------------------------- the decision's fast path against the plain one
# Every shortcut of detection (the digit-run prefilter, the order-number skip, the word pass's findings handed to the
# canonical view, the " at " places dropped before a match) must find what the plain route finds: a shortcut that
# skipped a value would send it to the cloud. Cases come from the disguise generator (every type and disguise, both
# splits, a seed of their own), set into bank text, Chinese text, look-alikes and the pieces each shortcut keys on.
GENERATED = [c for split in variants.SPLITS for c in variants.generate(split, 11)]
FILLER = [
    prompt(600, "mixed"),
    prompt(600, "english"),
    "order ORD20231128001234 shipped, hotline 95588, rate 3.85%, v2.3.1 ",
    "我想咨询一下信用卡的年费政策，还有积分兑换的规则。",
    " at the branch ",
    "写一段",
    "\u3000",
    "٣٤٥",
    "ｊｏｈｎ",
    "₂₁",
    "\u212a",
    "İ",
    " dot ",
    "点",
    "。",
    "\t",
    "(at)",
    "@",
    "\\u0034",
    "我想咨询一下，第一个问题",
    "三 5",
    "ORD12345678 ",
    "gb12345678901 ",
    "",
]


def _decision_path_scan(text: str) -> list[detect.Finding]:
    """Detection as ``Decider.decide`` runs it: one shared word pass handed to the detector."""
    view = TextView.of(text)
    words = shared().words(view)
    return Detector().scan(text, hits=(words.en, words.other), view=view, present=words.present)


@settings(max_examples=400, deadline=None)
@given(
    case=st.sampled_from(GENERATED),
    before=st.lists(st.sampled_from(FILLER), max_size=3).map("".join),
    after=st.lists(st.sampled_from(FILLER), max_size=3).map("".join),
    glue=st.sampled_from(["", " ", "\n", "，"]),
)
def test_fast_path_finds_what_the_plain_path_finds(case: variants.Case, before: str, after: str, glue: str) -> None:
    text = before + glue + case.text + glue + after
    fast = _decision_path_scan(text)
    assert fast == Detector().scan(text, plain=True)
    if case.types and not before and not after:  # around other text a context word may rightly make a look-alike
        assert fast, f"{case.types} / {case.disguise} not found"


def test_every_compatibility_digit_and_space_reaches_the_canonical_view() -> None:
    # The word pass reported only some compatibility characters; the canonical view trusted it and left the others
    # (other scripts' digits, the ideographic space, subscripts, full-width letters) as they were: these went out.
    for text, kind in (
        ("my card ٤١١١ ١١١١ ١١١١ ١١١١ thanks", "card"),  # Arabic-Indic digits
        ("卡号 ۴۱۱۱۱۱۱۱۱۱۱۱۱۱۱", "bank_account"),  # Persian digits
        ("card 4111\u30001111\u30001111\u30001111", "card"),  # ideographic spaces
        ("ssn ₂₁₉-₀₉-₉₉₉₉", "ssn"),  # subscript digits
        ("mail ｊｏｈｎ@gmail.com", "email"),  # full-width letters, ASCII @
        ("card ४१११ १११११ १११ १११११", "bank_account"),  # Devanagari digits
    ):
        assert kind in {f.type for f in _decision_path_scan(text)}, text
        req = parse_request(json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode())
        decision, _ = Decider(Settings()).decide(req)
        assert decision.sensitive_types and not decision.cloud_allowed(), text


def test_case_blind_iban_match_with_dotted_capital_i_is_no_crash() -> None:
    # _IBAN_ANYCASE matches "İ" (its lower case is "i"); iban_ok then raised ValueError in int(c, 36): a 500.
    text = "IBAN gb68lrzc24241456İ0000 please"
    assert not detect.iban_ok("gb68lrzc24241456İ0000")
    req = parse_request(json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode())
    decision, _ = Decider(Settings()).decide(req)
    assert decision.reason


AT_HINT_PIECES = [
    " at ",
    " at\t",
    "\tat ",
    " AT ",
    "at",
    "[at]",
    "@",
    "john",
    "gmail",
    " dot ",
    " DOT ",
    ".",
    "。",
    "点",
    "com",
    "cn",
    "\u212a",  # Kelvin sign: matches "k" case-blind
    "ſ",
    "İ",
    "我",
    "the branch",
    "-",
    "  ",
    "(",
    "[dot]",
]


@given(text=st.lists(st.sampled_from(AT_HINT_PIECES), max_size=14).map("".join))
@settings(max_examples=400, deadline=None)
def test_spaced_at_prefilter_drops_only_places_the_hint_rejects(text: str) -> None:
    view = TextView.of(text)
    low = view.low
    reference = re.compile(normalize._AT, re.I)  # the two-step route: the at-spelling, then the hint after it
    hint = re.compile(normalize._RIGHT_HINT, re.I)

    def accepted(starts: set[int]) -> set[int]:
        out = set()
        for i in starts:
            at = reference.match(text, i)
            fused = normalize._HINTED_AT.match(text, i)
            assert (fused is not None) == bool(at and hint.match(text, at.end()))
            if fused:
                assert fused.end() == at.end()  # type: ignore[union-attr]
                out.add(i)
        return out

    everywhere = normalize._at_starts(low)
    if len(low) == len(text):
        assert accepted(normalize._at_starts(low, hinted=True)) == accepted(everywhere)
    assert normalize._has_at_needle(low) == any(n in low for n in normalize._AT_NEEDLES)
    fast, plain = normalize.canonical(text, view), normalize.canonical(text, view, plain=True)
    assert fast.text == plain.text
    assert [fast.raw_span(i, i + 1) for i in range(len(fast.text))] == [
        plain.raw_span(i, i + 1) for i in range(len(plain.text))
    ]


# ---------------------------------------------------------------- the wide view and the scans that read it
def test_characters_read_as_never_digit_like_are_none() -> None:
    # _ONE_FOR_ONE_FAST trusts _NOT_DIGITISH: a digit-like character in it would leave a Chinese digit next to a
    # digit unconverted (四1 would stay a look-alike's "四1" instead of "41"), and a value would reach the cloud.
    everything = "".join(map(chr, range(0x110000)))
    never = re.findall(f"[{normalize._NOT_DIGITISH}]", everything)
    assert len(never) > 20_000
    assert not [c for c in never if normalize._is_digitish(c)]


ONE_FOR_ONE_PIECES = [
    *normalize._ZH_DIGITS,
    "下",
    "个",
    "第",
    "，",
    "。",
    "：",
    "？",
    "\u3000",
    "１",
    "－",
    "／",
    "ａ",
    "＠",
    "٣",
    "४",
    "²",
    "₂",
    "①",
    "➀",
    "𝟘",
    "😀",
    "’",
    "é",
    "0",
    "7",
    " ",
    "-",
    ".",
    "/",
    "\t",
    "\n",
    "\x00",
    "?",
    "a",
    "card ",
    "x" * 9,
]


@settings(max_examples=500, deadline=None)
@given(text=st.lists(st.sampled_from(ONE_FOR_ONE_PIECES), max_size=40).map("".join))
def test_one_for_one_on_the_wide_view_changes_what_the_plain_scan_changes(text: str) -> None:
    plain = normalize._one_for_one(text, plain=True)
    assert normalize._one_for_one(text) == plain
    assert normalize._one_for_one(text, TextView.of(text)) == plain
    view = TextView.of(text)
    assert normalize.canonical(text, view).text == normalize.canonical(text, view, plain=True).text


def test_wide_view_keeps_every_non_ascii_character_with_its_context() -> None:
    text = "ab我c" + "x" * 20 + "叫" + "yy" + "张" + "z" * 3
    view = TextView.of(text)
    wide = view.wide()
    assert wide == "ab我c" + "x" * 3 + "\x00" + "xx叫yy张zzz"
    for i, c in enumerate(wide):
        if c != "\x00":
            assert text[view.from_wide(i)] == c
    assert TextView.of("我").wide() == "我"


OTHER_WORD_PIECES = sorted(set(detect.OTHER_WORDS) | set(complexity.OTHER_WORDS))
OTHER_PIECES = [
    *OTHER_WORD_PIECES,
    *{w[0] for w in OTHER_WORD_PIECES},
    *{w[:-1] for w in OTHER_WORD_PIECES if len(w) > 2},
    "圈",
    "a",
    "A",
    "我",
    "想",
    "，",
    "😀",
    "’",
    "?",
    "\x00",
    " ",
    "x" * 5,
    "x" * 7,
    "x" * 8,
    "order 123 ",
    "bcdefgh",
    "x y",
]


@settings(max_examples=500, deadline=None)
@given(text=st.lists(st.sampled_from(OTHER_PIECES), max_size=30).map("".join))
@example(text="圈abcdefgh 我x y 想? 圈a")
def test_other_words_on_the_wide_view_are_the_whole_text_matches(text: str) -> None:
    lex = shared()
    view = TextView.of(text)
    plain = lex.other_reference(text) if not view.ascii else []
    assert lex.words(view).other == plain
    assert lex.hits_in(view)[1] == plain
    # words with ASCII after their first character, longer than the context the wide view keeps after one
    long_tails = Lexicon([], ["圈abcdefgh", "圈ab", "我x y", "想?"])
    tails = long_tails.other_reference(text)
    assert long_tails.words(view).other == tails


RUN_PIECES = [
    "ORD",
    "ord",
    "Ref",
    "x",
    "de",
    "DE",
    "gb",
    "Gb",
    "ıt",  # dotless i: "ıt".upper() is "IT", a country
    "ſe",  # long s: "ſe".upper() is "SE"
    "K",
    "\u212a",
    "?",
    "我",
    " ",
    "-",
    ".",
    "/",
    "\n",
    "+",
    ",",
    "a" * 9,
    "order ",
    "1",
    "12",
    "1234567",
    "12345678901234",
    "2023112800123456789012345678901234",
    "X",
]


@settings(max_examples=500, deadline=None)
@given(text=st.lists(st.sampled_from(RUN_PIECES), min_size=1, max_size=14).map("".join))
def test_digit_view_skips_only_order_numbers_the_python_step_skips(text: str) -> None:
    view = TextView.of(text)
    fast = [m.span() for m in detect._number_matches(view)]
    # the marks' route: every run, each skipped or not in Python (what _number_matches does for a text with "İ")
    marks_view = TextView(view.text, view.ascii, view.low, view.marks, view.text.lower())
    assert fast == [m.span() for m in detect._number_matches(marks_view)]
    fast_found: list[detect.Finding] = []
    plain_found: list[detect.Finding] = []
    Detector._numbers(view, fast_found)
    Detector._numbers(view, plain_found, plain=True)
    assert fast_found == plain_found


def test_digit_view_skip_window_and_country_edges() -> None:
    # An IBAN head, a digit or a non-ASCII character up to ten characters before an order number keeps it for the
    # Python step; a country code right before the digits too. Each offset is checked against the marks' route.
    cases = [
        head + "x" * k + glue + digits
        for head in ("gb12", "DE89 ", "7", "我", "?", "")
        for k in range(12)
        for glue in ("ORD", "ord", "de", "GB", "ıt", "x")
        for digits in ("1234567", "123456", "20231128001234", "1" * 36, "1234567 8", "1234567-")
    ]
    for text in cases:
        view = TextView.of(text)
        marks_view = TextView(view.text, view.ascii, view.low, view.marks, view.text.lower())
        assert [m.span() for m in detect._number_matches(view)] == [
            m.span() for m in detect._number_matches(marks_view)
        ], text


def test_other_words_are_anchored_at_their_rarest_character() -> None:
    assert lexicon.anchor_index("分析") == 1  # 析, not the 分 of every 积分 and 分行
    assert lexicon.anchor_index("我叫") == 1
    assert lexicon.anchor_index("圈a") == 0  # never at an ASCII character: the wide view holds only non-ASCII ones
    assert lexicon.anchor_index("路") == 0
    assert lexicon.anchor_index("ab") == 0
    # a character outside the list counts as rarer than every listed one
    assert lexicon.anchor_index("的\U00020000") == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我居住在上海", [("居住在", 1, 4), ("住在", 2, 4)]),
        ("相对比较贵", [("对比", 1, 3), ("比较", 2, 4)]),
        ("我是什么人", [("我是", 0, 2), ("是什么", 1, 4)]),
        ("我的名字叫李雷", [("我的名字叫", 0, 5), ("名字叫", 2, 5)]),
        ("积分兑换的规则，分析一下", [("分析", 8, 10)]),
    ],
)
def test_overlapping_other_words_are_all_reported(text: str, expected: list[tuple[str, int, int]]) -> None:
    # A regex that consumes a whole word hides the word overlapping it (对比 swallowed the 比 of 比较); anchored
    # matches consume the anchor alone.
    lex = shared()
    view = TextView.of("Hello " + text)
    shifted = [(w, s + 6, e + 6) for w, s, e in expected]
    assert lex.words(view).other == shifted == lex.other_reference(view.text)
    assert lex.words(TextView.of(text)).other == expected


ROOM_PIECES = [
    "室",
    "单元",
    "栋",
    "5",
    "502",
    "１２",
    "٣",
    "²",
    " ",
    "\t",
    "\n",
    "\r",
    "号",
    "路",
    "a",
    "#",
    "-",
    "x" * 12,
]


@settings(max_examples=400, deadline=None)
@given(text=st.lists(st.sampled_from(ROOM_PIECES), max_size=25).map("".join))
def test_room_number_check_finds_what_the_search_finds(text: str) -> None:
    # _room_start skips the search when no digit ends right before the word; it must never skip one that matches.
    for s in range(len(text) + 1):
        m = detect._ZH_ROOM_BEFORE.search(text, max(0, s - 30), s)
        assert detect._room_start(text, s) == (None if m is None else m.start()), (text, s)


def test_a_text_of_room_words_costs_no_search_per_word(monkeypatch: pytest.MonkeyPatch) -> None:
    # 室 is a one-character trigger: every character of "室室室..." is a hit. The search behind each hit ran ~9 µs
    # (a lazy pattern from 30 places); now it runs only where a number ends right before the word.
    searches: list[tuple[int, int]] = []
    original = detect._ZH_ROOM_BEFORE

    class Counting:
        def search(self, text: str, pos: int, endpos: int) -> re.Match[str] | None:
            searches.append((pos, endpos))
            return original.search(text, pos, endpos)

    monkeypatch.setattr(detect, "_ZH_ROOM_BEFORE", Counting())
    assert Detector().scan("室" * 500) == []
    assert searches == []
    found = Detector().scan("上海市浦东新区张江路88号3号楼502室")
    assert searches and any(f.type == "address" for f in found)


def _one_for_one_by_translate(text: str) -> str:
    """What normalize._one_for_one_plain did before: translate the whole text, then the Chinese digits."""
    found = [(m.start(), m.group()) for m in normalize._ONE_FOR_ONE.finditer(text)]
    if any(c in normalize._COMPAT for _, c in found):
        text = text.translate(str.maketrans(normalize._COMPAT))
    chars = list(text)
    for i, c in found:
        if c in normalize._ZH_DIGITS and normalize._digit_next_to(text, i):
            chars[i] = normalize._ZH_DIGITS[c]
    return "".join(chars)


@settings(max_examples=500, deadline=None)
@given(text=st.lists(st.sampled_from(ONE_FOR_ONE_PIECES), max_size=40).map("".join))
@example(text="我的卡号是４１１１一二三四，ｅｍａｉｌ：ｌｉ＠ｑｑ．ｃｏｍ")
def test_one_for_one_changes_only_the_characters_translate_changes(text: str) -> None:
    assert normalize._one_for_one_plain(text) == _one_for_one_by_translate(text)
    assert normalize._one_for_one(text, TextView.of(text)) == _one_for_one_by_translate(text)
