"""Byte views of a text, built once per text and read by every pass (words, numbers, punctuation counts).

Python's ``re`` tries a match at every position whose character could start one: 2-5 ns per character when a
pattern starts with a character class. ``bytes.translate``, ``split``, ``count`` and ``find`` run at well under
1 ns per byte, and ``re`` itself is several times faster when a pattern starts with one literal character. So a text
is turned once into two byte strings **with the same offsets as the text** (``encode("ascii", "replace")`` writes
one ``?`` per non-ASCII character) and everything that only concerns ASCII (English words, digit runs, punctuation)
reads them; the Chinese words and the checks at each hit read the text itself.

The passes that only start at a non-ASCII character (the Chinese words, the compatibility characters and Chinese
digits of the canonical view) read a third view, :meth:`TextView.wide`: the text's non-ASCII stretches, each with a
few characters of context, joined. ``re`` spends ~3-7 ns per character on a class scan whatever the character, and
in a mixed English/Chinese text four characters in five are ASCII.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

# ``marks``: one byte per character saying what it is, for the digit-run and punctuation passes.
DIGIT = b"0"  # 0-9
NUMBER_SEP = b"-"  # space, -, (, ): what may sit between the digits of a card or phone number
MATH = b"="  # any of MATH_SIGNS
MATH_SIGNS = b"=^%+/"
QUESTION = b"?"  # an ASCII "?" (in an ASCII text only: in the view, non-ASCII characters are "?" too)
PIPE = b"|"
TAB = b"\t"
NEWLINE = b"\n"
LETTER = b"a"  # A-Z, a-z


def _marks_table() -> bytes:
    table = bytearray(b"." * 256)
    for chars, mark in (
        (b"0123456789", DIGIT),
        (b" -()", NUMBER_SEP),
        (MATH_SIGNS, MATH),
        (b"?", QUESTION),
        (b"|", PIPE),
        (b"\t", TAB),
        (b"\n", NEWLINE),
        (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", LETTER),
    ):
        for c in chars:
            table[c] = mark[0]
    return bytes(table)


_MARKS = _marks_table()

# The wide view (TextView.wide): each stretch of non-ASCII characters with this many characters of context before and
# after it, stretches closer than WIDE_GAP merged, joined by NUL. Passes that look for non-ASCII characters (Chinese
# words, compatibility characters) scan it instead of the whole text: ~3 ns per character either way, and a mixed
# English/Chinese text's wide view is a fifth of it.
WIDE_BEFORE = 2
WIDE_AFTER = 4
WIDE_JOIN = "\x00"
# "?" in the marks: a non-ASCII character (or an ASCII "?", which only widens a stretch). "\?[?]*+" scans ~8x faster
# than "\?+" in re (a literal first, not a repeat).
_WIDE_GAP = WIDE_BEFORE + WIDE_AFTER + 1
_STRETCH = re.compile(rb"\?[?]*+(?:[^?]{1,%d}\?[?]*+)*+" % _WIDE_GAP)

# The only characters whose lower case is ASCII or longer than one character (checked over all of Unicode): with
# them the text's ``lower()`` is needed to keep its offsets and word forms exactly as before.
_ODD_LOWER = ("\u0130", "\u212a")  # İ -> "i̇" (two characters), Kelvin sign -> "k"


@dataclass(slots=True)
class _Wide:
    """A text's wide view (:meth:`TextView.wide`), its stretches, and :meth:`TextView.from_wide`'s tables (built on
    the first mapping: most texts have no hit to map)."""

    text: str
    spans: list[tuple[int, int]]
    starts: list[int] | None = None  # where each piece starts in the wide view
    origins: list[int] = field(default_factory=list)  # ... and in the text


@dataclass(frozen=True, slots=True)
class TextView:
    """A text and its byte views (index ``i`` of a view is character ``i`` of ``text``; but see ``lower``).

    Attributes:
        text: the text as received.
        ascii: the text is pure ASCII (then Chinese words and non-ASCII characters need no pass).
        low: the text lower-cased, each non-ASCII character replaced by ``?``.
        marks: the text with ASCII letters as ``a``, digits as ``0``, number separators as ``-``, math signs as
            ``=``; ``?``, ``|``, tab and newline kept; non-ASCII characters as ``?``; everything else as ``.``.
        lower: ``text.lower()`` when it was given or needed; None otherwise. When set, ``low`` is made from it, so
            ``low`` has its offsets (they differ from the text's only after an ``İ``, as before views existed).
    """

    text: str
    ascii: bool
    low: bytes
    marks: bytes
    lower: str | None
    _wide: _Wide | None = field(default=None, compare=False, repr=False)  # built by wide() on first use

    @classmethod
    def of(cls, text: str, lower: str | None = None) -> TextView:
        """The views of ``text``.

        Args:
            text: the text.
            lower: ``text.lower()`` if the caller has it; English words are then read from it, as before views
                existed (its offsets differ from the text's only where the text holds ``İ``).

        Returns:
            The views.
        """
        is_ascii = text.isascii()
        if lower is None and not is_ascii and (_ODD_LOWER[0] in text or _ODD_LOWER[1] in text):
            lower = text.lower()
        view = text.encode("ascii", "replace")
        low = view.lower() if lower is None else lower.encode("ascii", "replace")
        return cls(text, is_ascii, low, view.translate(_MARKS), lower)

    def wide(self) -> str:
        """The text's non-ASCII stretches with their context, for passes that only start at non-ASCII characters.

        Every non-ASCII character of the text is in the wide view with at least :data:`WIDE_BEFORE` characters
        before it and :data:`WIDE_AFTER` after it as in the text (fewer only where the text itself ends); pieces
        are joined by :data:`WIDE_JOIN`. Built on first use and kept; :meth:`from_wide` maps a position back.
        """
        return self._wide_view().text

    def from_wide(self, pos: int) -> int:
        """The text offset of position ``pos`` of :meth:`wide` (``pos`` inside a piece, not on a join)."""
        wide = self._wide_view()
        if wide.starts is None:  # first call: where each piece starts in the wide view and in the text
            starts, at, n = [], 0, len(self.text)
            for s, e in wide.spans:
                origin = s - WIDE_BEFORE if s > WIDE_BEFORE else 0
                starts.append(at)
                wide.origins.append(origin)
                at += min(e + WIDE_AFTER, n) - origin + len(WIDE_JOIN)
            wide.starts = starts
        k = bisect_right(wide.starts, pos) - 1
        return wide.origins[k] + pos - wide.starts[k]

    def _wide_view(self) -> _Wide:
        if self._wide is not None:
            return self._wide
        text = self.text
        spans = [m.span() for m in _STRETCH.finditer(self.marks)]
        pieces = [text[s - WIDE_BEFORE if s > WIDE_BEFORE else 0 : e + WIDE_AFTER] for s, e in spans]
        wide = _Wide(WIDE_JOIN.join(pieces), spans)
        object.__setattr__(self, "_wide", wide)  # a cache on a frozen view
        return wide

    def lower_slice(self, start: int, end: int) -> str:
        """``text.lower()[start:end]`` without lower-casing the whole text."""
        if self.lower is not None:
            return self.lower[start:end]
        return self.text[start:end].lower()

    def count_questions(self) -> int:
        """Number of question marks in the text, ASCII ``?`` and full-width ``？``."""
        if self.ascii:
            return self.marks.count(QUESTION)
        # A count is one C loop; as a word-pass hit each ？ would cost a match object (~3x more in Chinese text). The
        # wide view, when built, holds every non-ASCII character once: a fifth of a mixed text to count in.
        return self.text.count("?") + (self.text if self._wide is None else self._wide.text).count("？")
