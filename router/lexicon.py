"""Word passes shared by detection and complexity scoring: one pass per script instead of one per module.

Python's regex engine has no multi-pattern automaton: it tries alternatives one by one at every position whose
character can start a match, so a regex over ~150 English words costs ~15 ns per character. Two cheaper routes:

- English: punctuation and non-ASCII characters become spaces (``bytes.translate`` on the UTF-8 text), the text is
  split into words, and one C-level set intersection finds which table words are present; only those are then
  located with ``str.find``. About 3x faster than one regex over all words (kept as :meth:`Lexicon.regex_hits`,
  the reference the tests compare against).

Chinese words and a few punctuation/math characters are matched on the text itself in both cases (rare
characters, so few positions qualify).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

Hit = tuple[str, int, int]  # (word as written in the table, start, end)

# Punctuation and every byte of a non-ASCII character (UTF-8) become spaces: "请call me" splits into "call", "me".
_NON_WORD = string.punctuation.encode() + bytes(range(128, 256))
_TO_SPACE = bytes.maketrans(_NON_WORD, b" " * len(_NON_WORD))
_TOKEN = re.compile(r"[a-z0-9]+")
# Endings that turn a stem from a table ("analy", "calculat", "optimi") into the words that carry it.
STEM_ENDINGS = (
    "", "s", "es", "ed", "d", "e", "ing", "ion", "ions", "ive", "or", "ors", "y", "ies", "ied", "ying", "ze", "se",
    "zes", "ses", "zed", "sed", "zing", "sing", "sis", "tic", "tical", "tics", "ication", "ications", "ify", "ified",
    "ation", "ations", "ate", "ated", "ates", "ating", "zation", "sation", "zations", "iation", "ment", "ments", "ly",
    "al", "ally", "ist", "ists", "ized", "ised",
)  # fmt: skip


def trie_regex(words: Iterable[str]) -> re.Pattern[str]:
    """One regex matching any of ``words``, factored by first character (longest word first within a group).

    Grouping by the first character makes one check per group instead of one per word (about 2x faster).
    """
    groups: dict[str, list[str]] = {}
    for w in sorted(set(words), key=len, reverse=True):
        groups.setdefault(w[0], []).append(w[1:])
    parts = [re.escape(k) + "(?:" + "|".join(re.escape(rest) for rest in v) + ")" for k, v in groups.items()]
    return re.compile("|".join(parts))


class Lexicon:
    """Finds table words in a text.

    Args:
        en_words: lower-case words and phrases searched in ``text.lower()``.
        other_words: words (Chinese, punctuation) searched in the text as written.
        stems: the entries of ``en_words`` that are word beginnings ("analy"): on the ASCII route they are found
            through any word that starts with them and ends in one of :data:`STEM_ENDINGS`.
    """

    def __init__(self, en_words: Iterable[str], other_words: Iterable[str], stems: Iterable[str] = ()) -> None:
        en = set(en_words)
        stem_set = set(stems)
        self._en_words = en
        self._en: re.Pattern[str] | None = None  # compiled on first regex_hits(): the fast route never needs it
        # ASCII route: each phrase is keyed by its longest word (the most telling one); phrases without a word of
        # letters/digits ("[at]", "```") are looked for directly.
        self._by_anchor: dict[bytes, set[str]] = {}
        self._direct: list[str] = []
        for w in en:
            tokens = _TOKEN.findall(w)
            if not tokens or w[0] in "[(":
                self._direct.append(w)
                continue
            anchor = max(tokens, key=len)
            endings = STEM_ENDINGS if w in stem_set and len(tokens) == 1 else ("",)
            for end in endings:
                self._by_anchor.setdefault((anchor + end).encode(), set()).add(w)
        self._anchors = frozenset(self._by_anchor)
        other = set(other_words)
        self._other = trie_regex(other)
        # An ASCII text can only hold the ASCII entries (punctuation); a small character set scans faster.
        other_ascii = {w for w in other if w.isascii()}
        self._other_ascii = trie_regex(other_ascii) if other_ascii else None

    def regex_hits(self, low: str) -> list[Hit]:
        """English hits by the plain regex route (matches anywhere, ~3x slower): the reference the fast route is
        tested against."""
        if self._en is None:
            self._en = trie_regex(self._en_words)
        return [(m.group(), m.start(), m.end()) for m in self._en.finditer(low)]

    def hits(self, text: str, low: str) -> tuple[list[Hit], list[Hit]]:
        """``(english_hits, other_hits)``; offsets are the same in ``text`` and ``low`` (``text.lower()``).

        English hits are every occurrence of every table word present (ordered by position); a phrase is looked
        for only when its longest word (or, for a stem, a word formed from it) occurs as a whole word.
        """
        present = self._anchors.intersection(low.encode().translate(_TO_SPACE).split())
        phrases = {w for a in present for w in self._by_anchor[a]}
        phrases.update(w for w in self._direct if w in low)
        en: list[Hit] = []
        for w in phrases:
            i = low.find(w)
            while i >= 0:
                en.append((w, i, i + len(w)))
                i = low.find(w, i + len(w))
        en.sort(key=lambda h: (h[1], -h[2]))
        rx = self._other_ascii if text.isascii() else self._other
        other = [(m.group(), m.start(), m.end()) for m in rx.finditer(text)] if rx is not None else []
        return en, other


_SHARED: Lexicon | None = None


def shared() -> Lexicon:
    """The union of the detection and complexity tables (built on first use), for callers that run both."""
    global _SHARED
    if _SHARED is None:
        from router import complexity, detect  # the two table owners; imported here to avoid an import cycle

        _SHARED = Lexicon(
            set(detect.EN_WORDS) | set(complexity.EN_WORDS),
            set(detect.OTHER_WORDS) | set(complexity.OTHER_WORDS),
            stems=complexity.EN_STEMS,
        )
    return _SHARED
