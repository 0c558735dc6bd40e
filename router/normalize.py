"""One canonical view of a text for detection: the disguises people use for numbers and addresses, undone.

Detection runs on the text as written and on this view (``router.detect``), and a value found on either counts. The
view undoes, in this order:

0. JSON/C string escapes (``\\n``, ``\\u516d``): tool-call arguments are JSON text, and values hide in them.
1. Compatibility characters, one for one (offsets unchanged): NFKC full-width and enclosed letters and digits
   (``４１１１``, ``zhangsan＠qq．com``), other scripts' decimal digits, the ideographic space; Chinese digits next
   to another digit, everyday and financial forms, 〇/零/幺/两 (``六二二二``, ``壹叁捌``).
2. English number words in runs of four or more digits or words (``four one one one ...``, ``double five``).
3. Single characters spaced out (``j o h n``, ``E 1 2 3 4 5 6 7 8``), joined.
4. Spelled e-mail addresses (``john at gmail dot com``, ``li[at]qq[dot]com``, ``zhang艾特qq点com``), written out.

Digit runs split by spaces, dots, slashes, dashes or line breaks are joined by the number matcher itself, on both
views (``router.detect``), so dates, amounts and versions keep their shape for the look-alike checks.

Steps 2-4 change lengths: :class:`Canonical` maps every span of the view back to the text, so a finding on the
view is reported (and redacted) on the text. Each step runs only when a cheap check says it can apply; a plain text
costs one ``isascii`` and a few byte searches.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from router import words as W
from router.textview import TextView

# Code-point blocks whose NFKC form is one ASCII letter, digit or e-mail/number punctuation.
_COMPAT_BLOCKS = ((0xFF01, 0xFF5E), (0x2460, 0x24FF), (0x2070, 0x209F), (0x2150, 0x218F))
# Blocks holding other scripts' decimal digits (Arabic-Indic, Devanagari, Bengali, Thai, ...).
_DIGIT_BLOCKS = ((0x0660, 0x06FF), (0x0900, 0x0DFF), (0x0E50, 0x0EDF), (0x1040, 0x1049), (0x17E0, 0x17E9))
_KEEP_PUNCT = "@.+-/#_"
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?|([nrtbf/\"\\]))")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": " ", "f": " ", "/": "/", '"': '"', "\\": "\\"}
_SEPARATORS = " \t-./"
_WIDE_MIN_DIGITS = 4  # number words convert only in runs of this many digits or words


def _compat_table() -> dict[str, str]:
    table: dict[str, str] = {"\u3000": " "}
    for lo, hi in _COMPAT_BLOCKS:
        for cp in range(lo, hi + 1):
            c = chr(cp)
            n = unicodedata.normalize("NFKC", c)
            if n != c and len(n) == 1 and n.isascii() and (n.isalnum() or n in _KEEP_PUNCT):
                table[c] = n
    for lo, hi in _DIGIT_BLOCKS:
        for cp in range(lo, hi + 1):
            d = unicodedata.decimal(chr(cp), None)
            if d is not None:
                table[chr(cp)] = str(d)
    return table


_COMPAT = _compat_table()
_ZH_DIGITS = W.ZH_DIGITS
# What counts as a digit next to a Chinese digit, besides str.isdigit(): Chinese digits and what maps to a digit.
_DIGITISH = frozenset((*_ZH_DIGITS, *(c for c, a in _COMPAT.items() if a.isdigit())))


def _char_class(chars: Iterable[str]) -> str:
    """A regex character class of ``chars`` written as ranges (a class of single characters is tested one by one)."""
    cps = sorted({ord(c) for c in chars})
    parts = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = re.escape(chr(cps[i])), re.escape(chr(cps[j]))
        parts.append(lo if i == j else f"{lo}-{hi}")
        i = j + 1
    return "[" + "".join(parts) + "]"


_ONE_FOR_ONE = re.compile(_char_class(_COMPAT.keys() | _ZH_DIGITS.keys()))


def _not_digitish_class() -> str:
    """Ranges of characters that are never digit-like (``_is_digitish`` is False for each; a test checks every
    one): ASCII other than digits, CJK punctuation, the CJK ideographs other than the Chinese digits, general
    punctuation and full-width punctuation. What Chinese and English text put next to a Chinese digit ("一下",
    "第一，") is in here, so a regex reads "no digit next to it" without a Python step."""
    ranges = [(0x00, 0x2F), (0x3A, 0x7F), (0x2000, 0x206F), (0x3000, 0x3006), (0x3008, 0x303F)]
    ranges += [(0xFF01, 0xFF0F), (0xFF1A, 0xFF65)]
    lo = 0x4E00
    for cp in sorted(ord(c) for c in _ZH_DIGITS if 0x4E00 <= ord(c) <= 0x9FFF):
        if cp > lo:
            ranges.append((lo, cp - 1))
        lo = cp + 1
    ranges.append((lo, 0x9FFF))
    return "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_NOT_DIGITISH = _not_digitish_class()
# The characters the one-for-one step may change, each only where it can change: every compatibility character, and
# a Chinese digit with a character next to it (or one separator away) that may be a digit. One class scan, and no
# Python step for the Chinese digits of ordinary Chinese text (一下, 一些, 三个: ~1 µs each before). Any character
# outside _NOT_DIGITISH counts as "may be a digit"; _digit_next_to then decides, as before.
_MAYBE_DIGIT = f"[^{_NOT_DIGITISH}]"
_SEP_CLASS = "[" + re.escape(_SEPARATORS) + "]"
_ONE_FOR_ONE_FAST = re.compile(
    _char_class(_COMPAT.keys() | _ZH_DIGITS.keys())
    + f"(?:(?<={_char_class(_COMPAT.keys())})|(?<={_MAYBE_DIGIT}.)|(?<={_MAYBE_DIGIT}{_SEP_CLASS}.)"
    + f"|(?={_MAYBE_DIGIT})|(?={_SEP_CLASS}{_MAYBE_DIGIT}))",
    re.DOTALL,
)
_NUM_TOKEN = "(?:" + "|".join(sorted((*W.NUMBER_WORDS, *W.REPEAT_WORDS), key=len, reverse=True)) + r"|\d{1,6})"
_NUM_RUN = re.compile(
    rf"(?i)(?<![a-z0-9]){_NUM_TOKEN}(?:(?:[ \t,./\-]{{1,3}}|[ \t]*\r?\n[ \t]*){_NUM_TOKEN}){{3,}}(?![a-z0-9])"
)
_NUM_PIECE = re.compile(rf"(?i){_NUM_TOKEN}")
_NUM_WORDS_ASCII = tuple(w.encode() for w in (*W.NUMBER_WORDS, *W.REPEAT_WORDS))
_NUMBER_WORD_SET = frozenset((*W.NUMBER_WORDS, *W.REPEAT_WORDS))

_SPACED = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9@.](?: [A-Za-z0-9@.]){3,}(?![A-Za-z0-9])")
# In the marks (letter "a", digit "0", space "-", other punctuation "."), two single characters between spaces; a
# pattern that starts with one literal is scanned fast (a search for several needles in the marks is not).
_SPACED_MARKS = re.compile(rb"-[a0.]-[a0.]-")

_LABEL = r"[a-z0-9_%+\-]{1,64}+"
_AT = r"(?:[ \t]*+(?:\[at\]|\(at\)|\{at\}|<at>|@|艾特|圈a)[ \t]*+|[ \t]++at[ \t]++)"
_DOT = r"(?:[ \t]*+(?:\[dot\]|\(dot\)|\{dot\}|<dot>|点)[ \t]*+|[ \t]++dot[ \t]++|[ \t]*+[.。][ \t]*+)"
_TLD = "(?:" + "|".join(sorted(W.EMAIL_TLDS, key=len, reverse=True)) + ")"
_SPELLED_LEFT = re.compile(rf"(?i){_LABEL}(?:{_DOT}{_LABEL}){{0,3}}+$")
_SPELLED_RIGHT = re.compile(rf"(?i)[a-z0-9\-]{{1,63}}(?:{_DOT}[a-z0-9\-]{{1,63}}){{0,3}}?{_DOT}{_TLD}(?![a-z0-9])")
_DOT_ONLY = re.compile(_DOT, re.I)
# What must follow an at-spelling for a domain to be possible: a label, then something that can spell a dot.
_RIGHT_HINT = r"[a-z0-9\-]{1,63}(?:[ \t]*[.。\[(<{]|[ \t]+dot[ \t]|点)"
# One match per place instead of two: the at-spelling (atomic: when the hint after it fails, no other reading of it
# is tried, as with a match of _AT alone followed by a match of the hint), then the hint.
_HINTED_AT = re.compile(rf"(?>{_AT})(?={_RIGHT_HINT})", re.I)
# The places " at " of _AT_FINDS where _HINTED_AT can match, on the lower-case view: its second form
# ("[ \t]++at[ \t]++"), then _RIGHT_HINT read permissively, every "?" of the view (a non-ASCII character of the
# text) standing for anything the pattern accepts there on the text (。, 点, a letter that case-folds to ASCII such
# as the Kelvin sign). In C, instead of a Python step and a match per " at " ("at the branch": ~0.8 µs each).
_SPACED_AT_HINTED = re.compile(rb" at(?=[ \t]++[a-z0-9\-?]{1,63}(?:[ \t]*[.?\[(<{]|[ \t]+[d?][o?][t?][ \t]|\?))")
_AT_NEEDLES = (b" at ", b"[at]", b"(at)", b"{at}", b"<at>", b" @", b"@ ", b"\tat ", b" at\t")
_AT_NEEDLES_WIDE = ("艾特", "圈a")
# Where an at-spelling can start (in the lower-cased text): _HINTED_AT is tried only there.
_AT_FINDS = (b" at ", b" at\t", b"\tat", b"[at]", b"(at)", b"{at}", b"<at>", b"@", b" @")
_AT_AFTER = (b" ", b"\t")
# "\tat" (anything after it), then "[at]", "(at)", "{at}", "<at>": an opening byte and what must close it.
_AT_OPENINGS = ((b"\t", b""), (b"[", b"]"), (b"(", b")"), (b"{", b"}"), (b"<", b">"))


@dataclass(frozen=True, slots=True)
class _Piece:
    """A stretch of the new text and the stretch of the old text it came from (copied, or rewritten whole)."""

    new_start: int
    old_start: int
    old_end: int
    copied: bool


class _Map:
    """Spans of a rewritten text back to the text it was rewritten from."""

    def __init__(self, pieces: list[_Piece]) -> None:
        self._pieces = pieces
        self._starts = [p.new_start for p in pieces]

    def old_span(self, start: int, end: int) -> tuple[int, int]:
        a = self._pieces[max(0, bisect_right(self._starts, start) - 1)]
        b = self._pieces[max(0, bisect_right(self._starts, max(start, end - 1)) - 1)]
        s = a.old_start + (start - a.new_start) if a.copied else a.old_start
        e = b.old_start + (end - b.new_start) if b.copied else b.old_end
        return s, max(e, s)


def _rewrite(text: str, edits: Iterable[tuple[int, int, str]]) -> tuple[str, _Map] | None:
    """Apply non-overlapping ``(start, end, replacement)`` edits (overlapping ones after the first are dropped)."""
    out: list[str] = []
    pieces: list[_Piece] = []
    pos = new = 0
    for s, e, repl in sorted(edits):
        if s < pos:
            continue
        if s > pos:
            pieces.append(_Piece(new, pos, s, True))
            out.append(text[pos:s])
            new += s - pos
        pieces.append(_Piece(new, s, e, False))
        out.append(repl)
        new += len(repl)
        pos = e
    if not pieces:
        return None
    pieces.append(_Piece(new, pos, len(text), True))
    out.append(text[pos:])
    return "".join(out), _Map(pieces)


@dataclass(frozen=True, slots=True)
class Canonical:
    """The canonical view of a text and the way back to the text's offsets.

    Attributes:
        text: the view (equal to the text when nothing was disguised).
        changed: the view differs from the text.
    """

    text: str
    changed: bool
    _maps: tuple[_Map, ...] = ()

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``text[start:end]`` of the view came from."""
        for m in reversed(self._maps):
            start, end = m.old_span(start, end)
        return start, end


def canonical(
    text: str,
    view: TextView | None = None,
    present: set[str] | None = None,
    other_hits: Iterable[tuple[str, int, int]] | None = None,
    plain: bool = False,
) -> Canonical:
    """The canonical view of ``text`` (see the module docstring).

    Args:
        text: the text as received.
        view: its :class:`~router.textview.TextView`, if the caller has it.
        present: the whole words of ``router.words.PRESENCE_WORDS`` the text holds, if a word pass found them
            already; None to look here.
        other_hits: the non-ASCII word hits of the same pass (they include the at-spellings 艾特 and 圈a); None to
            look here.
        plain: take no shortcut in finding the at-spellings (the reference the shortcuts are tested against).

    Returns:
        The view, with ``changed`` False (and no cost beyond the checks) when nothing applies.
    """
    if view is None:
        view = TextView.of(text)
    maps: list[_Map] = []
    t = text
    if "\\" in text:
        t = _apply(t, _escapes(t), maps)
        if t is not text:
            view, other_hits = TextView.of(t), None  # offsets moved: look for the wide at-spellings here
    if not view.ascii:
        t = _one_for_one(t, view, plain)
    low = view.low
    if present is None:
        numbers = any(_has_word(low, w) for w in _NUM_WORDS_ASCII)
        spelled = b" at " in low or b" dot " in low
    else:
        numbers = not _NUMBER_WORD_SET.isdisjoint(present)
        spelled = "at" in present or "dot" in present
    if numbers:
        t = _apply(t, _number_words(t), maps)
    tview = view if t is text else TextView.of(t)
    if _SPACED_MARKS.search(tview.marks):
        t = _apply(t, _spaced(t), maps)
        tview = TextView.of(t)
    # Where "艾特"/"圈a" occur: read off the word pass when the text is still the one it ran on (it reports every
    # occurrence of every other-word), else searched for.
    wide_at = [s for w, s, _ in other_hits if w in _AT_NEEDLES_WIDE] if t is text and other_hits is not None else None
    at_needle = any(n in low for n in _AT_NEEDLES) if plain else _has_at_needle(low)
    if spelled or at_needle or (not view.ascii and _has_wide_at(t, wide_at)):
        t = _apply(t, _spelled_emails(t, tview.low, wide_at, plain), maps)
    return Canonical(t, t != text, tuple(maps))


def _has_at_needle(low: bytes) -> bool:
    """``any(n in low for n in _AT_NEEDLES)``, with a memchr first for each needle's rarest byte (most texts hold
    none of them, and nine whole-text searches cost ~2 µs each at 4 KB)."""
    if b" at" in low and (b" at " in low or b" at\t" in low):
        return True
    for opening, closing in _AT_OPENINGS:
        if opening in low and opening + b"at" + (closing or b" ") in low:
            return True
    return b"@" in low and (b" @" in low or b"@ " in low)


def _has_wide_at(t: str, wide_at: list[int] | None) -> bool:
    if wide_at is not None:
        return bool(wide_at)
    return any(n in t for n in _AT_NEEDLES_WIDE)


def _escapes(t: str) -> list[tuple[int, int, str]]:
    """JSON/C string escapes (``\\n``, ``\\t``, ``\\u0034``) as the characters they stand for: a value inside
    tool-call arguments or pasted JSON is written with them."""
    edits = []
    for m in _ESCAPE.finditer(t):
        if m.group(1):
            cp = int(m.group(1), 16)
            if m.group(2) and 0xD800 <= cp <= 0xDBFF:
                cp = 0x10000 + ((cp - 0xD800) << 10) + (int(m.group(2), 16) - 0xDC00)
            char = chr(cp) if not 0xD800 <= cp <= 0xDFFF else " "
        else:
            char = _SIMPLE_ESCAPES[m.group(3)]
        edits.append((m.start(), m.end(), char))
    return edits


def _has_word(low: bytes, word: bytes) -> bool:
    """True when ``word`` occurs in ``low`` as a whole word (a search per occurrence: "one" is in "phone")."""
    i = low.find(word)
    while i >= 0:
        j = i + len(word)
        if (i == 0 or not low[i - 1 : i].isalnum()) and (j == len(low) or not low[j : j + 1].isalnum()):
            return True
        i = low.find(word, j)
    return False


def _apply(t: str, edits: list[tuple[int, int, str]], maps: list[_Map]) -> str:
    done = _rewrite(t, edits) if edits else None
    if done is None:
        return t
    maps.append(done[1])
    return done[0]


def _one_for_one(text: str, view: TextView | None = None, plain: bool = False) -> str:
    """Compatibility characters and Chinese digits (next to another digit) as ASCII; offsets unchanged.

    One character-class scan (~3 ns per character) finds them all. The word pass used to report the commonest of them
    instead, which missed the rest (Arabic-Indic digits, the ideographic space, full-width letters, subscripts); as
    words they would cost it more than this scan (each Chinese character that starts a word but not here walks every
    alternative of its regex).

    Args:
        text: the text.
        view: its :class:`~router.textview.TextView`: the scan then reads its wide view (every non-ASCII character
            with two characters of context on each side, all the lookarounds need), a fifth of a mixed text.
        plain: scan the whole text and look at every Chinese digit in Python (the reference): the fast route's scan
            reports only those with a possible digit next to them, and a text with a compatibility character takes
            the plain route.
    """
    if plain:
        return _one_for_one_plain(text)
    if view is None:
        found = [m.start() for m in _ONE_FOR_ONE_FAST.finditer(text)]
    else:
        found = [view.from_wide(m.start()) for m in _ONE_FOR_ONE_FAST.finditer(view.wide())]
    if not found:
        return text
    if any(text[i] in _COMPAT for i in found):
        return _one_for_one_plain(text)  # rare: the translation turns some neighbours into digits or separators
    # only Chinese digits here, each with a possible digit next to it
    return _put(text, [(i, _ZH_DIGITS[text[i]]) for i in found if _digit_next_to(text, i)])


def _one_for_one_plain(text: str) -> str:
    found = [(m.start(), m.group()) for m in _ONE_FOR_ONE.finditer(text)]
    if not found:
        return text
    # Full-width letters come along with the digits or "@" (the scan's class holds every key of the table).
    text = _put(text, [(i, _COMPAT[c]) for i, c in found if c in _COMPAT])
    # a Chinese digit is no compatibility character: the first step left it as it was
    return _put(text, [(i, _ZH_DIGITS[c]) for i, c in found if c in _ZH_DIGITS and _digit_next_to(text, i)])


def _put(text: str, chars: Iterable[tuple[int, str]]) -> str:
    """``text`` with ``text[i]`` replaced by ``c`` for each ``(i, c)`` of ``chars`` (one character each, offsets
    unchanged), through :func:`_rewrite`'s slices: ``list(text)`` or ``str.translate`` make one object or one dict
    lookup per character of Chinese text (~25 and ~60 ns), 100-240 µs for 4,000 characters holding one full-width
    letter or 一 next to a digit."""
    done = _rewrite(text, [(i, i + 1, c) for i, c in chars])
    return text if done is None else done[0]


def _is_digitish(c: str) -> bool:
    return c.isdigit() or c in _DIGITISH


def _digit_next_to(text: str, i: int) -> bool:
    """True when a digit (any form) sits next to ``text[i]``, with at most one separator between."""
    if i > 0:
        c = text[i - 1]
        if c.isdigit() or c in _DIGITISH or (c in _SEPARATORS and i > 1 and _is_digitish(text[i - 2])):
            return True
    if i + 1 < len(text):
        c = text[i + 1]
        if c.isdigit() or c in _DIGITISH or (c in _SEPARATORS and i + 2 < len(text) and _is_digitish(text[i + 2])):
            return True
    return False


def _number_words(t: str) -> list[tuple[int, int, str]]:
    """Runs of number words and digits (at least one word) as the digits they spell."""
    edits = []
    for m in _NUM_RUN.finditer(t):
        digits: list[str] = []
        repeat = 1
        words = False
        for tok in _NUM_PIECE.findall(m.group()):
            low = tok.lower()
            if low in W.REPEAT_WORDS:
                repeat, words = W.REPEAT_WORDS[low], True
                continue
            d = W.NUMBER_WORDS.get(low)
            if d is not None:
                words = True
            else:
                d = tok
            digits.append(d[0] * repeat + d[1:])
            repeat = 1
        joined = "".join(digits)
        if words and len(joined) >= _WIDE_MIN_DIGITS:
            edits.append((m.start(), m.end(), joined))
    return edits


def _spaced(t: str) -> list[tuple[int, int, str]]:
    """Single characters spaced out (``j o h n``), joined."""
    return [(m.start(), m.end(), m.group().replace(" ", "")) for m in _SPACED.finditer(t)]


def _at_starts(low: bytes, hinted: bool = False) -> set[int]:
    """Where each of :data:`_AT_FINDS` occurs in ``low``, found with the rarest needles that pin them down.

    ``" at"`` (then the character after it checked here) instead of ``"at"``, which English has in every other word
    ("that", "rate", "data"); ``"\tat"`` and the bracketed forms only when a tab or an opening bracket occurs at all
    (a memchr each); ``"@"`` with one memchr. Property-tested equal to one search per needle.

    Args:
        low: the lower-case ASCII view of a text.
        hinted: leave out the ``" at "`` places after which no domain can follow (:data:`_SPACED_AT_HINTED`: "at
            the branch"), which :data:`_HINTED_AT` would reject; only where ``low`` has the text's offsets.
    """
    starts: set[int] = set()
    if hinted:
        starts.update(m.start() for m in _SPACED_AT_HINTED.finditer(low))
    else:
        i = low.find(b" at")
        while i >= 0:
            if low[i + 3 : i + 4] in _AT_AFTER:
                starts.add(i)
            i = low.find(b" at", i + 3)
    for opening, closing in _AT_OPENINGS:
        if opening in low:
            needle = opening + b"at" + closing
            i = low.find(needle)
            while i >= 0:
                starts.add(i)
                i = low.find(needle, i + len(needle))
    i = low.find(b"@")
    while i >= 0:
        starts.add(i)
        if low[i - 1 : i] == b" ":
            starts.add(i - 1)
        i = low.find(b"@", i + 1)
    return starts


def _spelled_emails(
    t: str, low: bytes, wide_at: Iterable[int] | None = None, plain: bool = False
) -> list[tuple[int, int, str]]:
    """E-mail addresses with "@" and "." spelled out (or spaced), written as addresses.

    Only the places where an at-spelling occurs are examined (found with plain substring searches): the domain side
    first (an anchored match), the local part only if it matched.

    Args:
        t: the text.
        low: its lower-case ASCII view.
        wide_at: where "艾特"/"圈a" start in ``t``, if known (else searched for).
        plain: try every place an at-spelling occurs (the reference for :func:`_at_starts`'s ``hinted``).
    """
    starts = _at_starts(low, hinted=not plain and len(low) == len(t))  # same length: no "İ" moved the offsets
    if wide_at is not None:
        starts.update(wide_at)
    elif not t.isascii():
        for wide in _AT_NEEDLES_WIDE:
            i = t.find(wide)
            while i >= 0:
                starts.add(i)
                i = t.find(wide, i + 1)
    edits = []
    for i in sorted(starts):
        at = _HINTED_AT.match(t, i)
        if not at:
            continue  # " at the branch": no domain-like word follows
        right = _SPELLED_RIGHT.match(t, at.end())
        if not right:
            continue
        left = _SPELLED_LEFT.search(t, max(0, at.start() - 96), at.start())
        if not left or left.end() == left.start():
            continue
        local = _DOT_ONLY.sub(".", left.group())
        domain = _DOT_ONLY.sub(".", right.group())
        if at.group() == "@" and local == left.group() and domain == right.group():
            continue  # a plain address: nothing to undo
        edits.append((left.start(), right.end(), f"{local}@{domain}"))
    return edits
