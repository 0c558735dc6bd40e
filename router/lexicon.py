"""Word passes shared by detection and complexity scoring: one pass per script instead of one per module.

Python's regex engine has no multi-pattern automaton: it tries alternatives one by one at every position whose
character can start a match, so a regex over ~150 English words costs ~15 ns per character. Two cheaper routes:

- English: the lower-case ASCII view of the text (``router.textview``: same offsets, non-ASCII characters as ``?``)
  has its punctuation turned into spaces (``bytes.translate``) and is split into words, and one C-level set
  intersection finds which table words are present; only those are then located with ``bytes.find``. About 3x
  faster than one regex over all words (kept as :meth:`Lexicon.regex_hits`, the reference the tests compare against).

- Chinese words and a few non-ASCII punctuation/math characters: only when the text is not pure ASCII (ASCII
  punctuation is counted on the view by its users), on the text's wide view (``TextView.wide``: its non-ASCII
  stretches with context; ~2x cheaper than the whole of a mixed English/Chinese text). Each word is looked for at its
  anchor, its rarest character in real Chinese (``router.zh_chars``): two regexes (:func:`anchor_regexes`) stop only
  at an anchor with its word around it. ``re`` spends ~0.1-0.2 µs at each place it tries, and words anchored at their
  first character were tried at every 分 and 我; anchored at 析 and 叫 they are tried about half as often in ordinary
  text (1.6-1.75x faster on Chinese reviews). Every occurrence of every word is reported, overlapping ones included
  (居住在 and 住在).
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

from router import textview, zh_chars
from router import words as W
from router.textview import QUESTION, TextView

Hit = tuple[str, int, int]  # (word as written in the table, start, end)


@dataclass(frozen=True, slots=True)
class Words:
    """What one word pass found in a text (offsets are those of the text; see ``TextView.lower``).

    Attributes:
        en: every occurrence of the English words the lexicon locates, ordered by position.
        other: every occurrence of the other words (Chinese, non-ASCII punctuation), ordered by position.
        present: every English table word that occurs in the text, located or not.
    """

    en: list[Hit]
    other: list[Hit]
    present: set[str]


# Punctuation (in the view a non-ASCII character is a "?" too) becomes a space: "请call me" splits into "call", "me".
_NON_WORD = string.punctuation.encode() + bytes(range(128, 256))
_TO_SPACE = bytes.maketrans(_NON_WORD, b" " * len(_NON_WORD))
_TOKEN = re.compile(r"[a-z0-9]+")
_PUNCT_IN_PHRASE = re.compile(r"[^a-z0-9 ]")
_OTHER_PROBES = 8  # non-ASCII characters looked at one by one before the other-word regex simply runs
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
        located: the English words whose every occurrence :meth:`words` reports (default: all); of the others
            it only says whether they occur, which for a one-word entry needs no search at all.
    """

    def __init__(
        self,
        en_words: Iterable[str],
        other_words: Iterable[str],
        stems: Iterable[str] = (),
        located: Iterable[str] | None = None,
    ) -> None:
        en = set(en_words)
        stem_set = set(stems)
        self._en_words = en
        self._en: re.Pattern[str] | None = None  # compiled on first regex_hits(): the fast route never needs it
        # ASCII route: each phrase is keyed by its longest word (the most telling one); phrases without a word of
        # letters/digits ("```") or starting with punctuation ("[at]", "<at>") are looked for directly, when their
        # first byte occurs (keyed by "at", "{at}" and "<at>" were searched for in every text saying "at the").
        self._by_anchor: dict[bytes, set[str]] = {}
        self._direct: list[str] = []
        for w in en:
            tokens = _TOKEN.findall(w)
            if not tokens or not w[0].isalnum():
                self._direct.append(w)
                continue
            anchor = max(tokens, key=len)
            endings = STEM_ENDINGS if w in stem_set and len(tokens) == 1 else ("",)
            for end in endings:
                self._by_anchor.setdefault((anchor + end).encode(), set()).add(w)
        self._anchors = frozenset(self._by_anchor)
        self._encoded = {w: w.encode("ascii") for w in en}  # table words are ASCII; the view is searched as bytes
        # A phrase holding punctuation ("i'm", "e-mail") cannot occur where that byte does not: one memchr before a
        # search that costs ~2-3 µs at 4 KB when the phrase is absent ("i'm" is keyed by "i", in most English text).
        self._mark = {w: m.group().encode("ascii") for w in en if (m := _PUNCT_IN_PHRASE.search(w))}
        self._located = en if located is None else en & set(located)
        # A one-word entry occurs whenever its anchor (itself, or a word formed from the stem) does.
        self._one_word = frozenset(w for w in en if _TOKEN.fullmatch(w))
        self._group_of, self._group_rx = _lead_groups(en - self._located - self._one_word - set(self._direct))
        # the direct phrases by first byte: one memchr per distinct byte ("[at]", "[dot]" share "[")
        self._direct_by_first: dict[bytes, list[str]] = {}
        for w in sorted(self._direct):
            self._direct_by_first.setdefault(self._encoded[w][:1], []).append(w)
        other = set(other_words)
        self._other_words = sorted(other)
        # Each other-word is looked for at its anchor: its rarest non-ASCII character (router.zh_chars), so ordinary
        # Chinese text offers few places to try (see anchor_regexes).
        self._other_at = _anchored(other)
        self._other = anchor_regexes(self._other_at) if other else None
        self._other_anchors = frozenset(self._other_at)
        self._other_anchor_ascii = any(c.isascii() for c in self._other_anchors)
        # The wide view (TextView.wide) can stand for the text when every other-word starts with a non-ASCII
        # character, is no longer than the context kept after one and holds no NUL (the join of the pieces): then
        # each occurrence lies whole inside one piece.
        self._wide_ok = all(
            not w[0].isascii() and len(w) <= textview.WIDE_AFTER + 1 and textview.WIDE_JOIN not in w for w in other
        )
        # An ASCII text can only hold the ASCII entries (punctuation); a small character set scans faster.
        other_ascii = _anchored(w for w in other if w.isascii())
        self._other_ascii = anchor_regexes(other_ascii) if other_ascii else None

    def _mark_in(self, w: str, low: bytes) -> bool:
        """False when ``w`` holds a punctuation byte that ``low`` does not (so ``w`` cannot occur in it)."""
        mark = self._mark.get(w)
        return mark is None or mark in low

    def regex_hits(self, low: str) -> list[Hit]:
        """English hits by the plain regex route (matches anywhere, ~3x slower): the reference the fast route is
        tested against."""
        if self._en is None:
            self._en = trie_regex(self._en_words)
        return [(m.group(), m.start(), m.end()) for m in self._en.finditer(low)]

    def hits(self, text: str, low: str) -> tuple[list[Hit], list[Hit]]:
        """``(english_hits, other_hits)`` of ``text`` given ``low`` (``text.lower()``); see :meth:`hits_in`."""
        return self.hits_in(TextView.of(text, low))

    def hits_in(self, view: TextView) -> tuple[list[Hit], list[Hit]]:
        """``(english_hits, other_hits)``: every occurrence of every table word; see :meth:`words`. The other words
        are matched on the whole text (the reference the wide view is tested against)."""
        found = self._find(view, self._en_words, plain=True)
        return found.en, found.other

    def words(self, view: TextView) -> Words:
        """The table words in a text: every occurrence of the located words, and which of the others occur.

        A phrase is looked for only when its longest word (or, for a stem, a word formed from it) occurs as a
        whole word.
        """
        return self._find(view, self._located)

    def _find(self, view: TextView, located: set[str], plain: bool = False) -> Words:
        low = view.low
        anchors = self._anchors.intersection(low.translate(_TO_SPACE).split())
        phrases = {w for a in anchors for w in self._by_anchor[a]}
        # bytes ``in`` with a one-byte needle is a memchr, ~10x faster than a search for the whole word.
        for first, direct in self._direct_by_first.items():
            if first in low:
                phrases.update(direct)
        en: list[Hit] = []
        present: set[str] = set()
        groups: set[bytes] = set()
        for w in phrases:
            wb = self._encoded[w]
            if w not in located:
                if w in self._one_word:
                    present.add(w)
                elif w in self._group_of:
                    groups.add(self._group_of[w])
                elif self._mark_in(w, low) and wb in low:
                    present.add(w)
                continue
            if not self._mark_in(w, low):
                continue
            i = low.find(wb)
            if i >= 0:
                present.add(w)
            while i >= 0:
                en.append((w, i, i + len(wb)))
                i = low.find(wb, i + len(wb))
        for anchor in groups:
            present.update(m.decode("ascii") for m in self._group_rx[anchor].findall(low))
        en.sort(key=_by_position)
        return Words(en, self._other_hits(view, plain), present)

    def _other_hits(self, view: TextView, plain: bool = False) -> list[Hit]:
        rx = self._other_ascii if view.ascii else self._other
        if rx is None or (not view.ascii and not self._may_hold_other(view)):
            return []
        if plain:
            return self.other_reference(view.text)
        if view.ascii or not self._wide_ok:
            return self._anchored_hits(rx, view.text)
        # Every occurrence lies whole inside one piece of the wide view (see _wide_ok), which holds nothing else:
        # ~3 ns per character, over a fifth of a mixed English/Chinese text.
        hits = self._anchored_hits(rx, view.wide())
        return [(w, start := view.from_wide(s), start + e - s) for w, s, e in hits]

    def _anchored_hits(self, regexes: tuple[re.Pattern[str], ...], text: str) -> list[Hit]:
        """Every occurrence of every other-word in ``text``: each regex (:func:`anchor_regexes`) stops only at an
        anchor with a word around it, consuming the anchor alone, so overlapping words are all seen; each word
        anchored there is then checked."""
        hits = []
        for rx in regexes:
            for m in rx.finditer(text):
                p = m.start()
                for w, k in self._other_at[text[p]]:
                    if p >= k and text.startswith(w, p - k):
                        hits.append((w, p - k, p - k + len(w)))
        if len(hits) > 1:
            hits.sort(key=_by_position)
        return hits

    def other_reference(self, text: str) -> list[Hit]:
        """Every occurrence of every other-word, one ``str.find`` loop per word (~100x slower): the reference the
        anchored route is tested against."""
        hits = []
        for w in self._other_words:
            i = text.find(w)
            while i >= 0:
                hits.append((w, i, i + len(w)))
                i = text.find(w, i + 1)
        hits.sort(key=_by_position)
        return hits

    def _may_hold_other(self, view: TextView) -> bool:
        """False when none of the text's few non-ASCII characters is an other-word's anchor.

        English text with a curly quote or an emoji is not ASCII, and the other-word regex tests every character of
        it (~3 ns each); looking at a handful of characters (each found with a memchr on the marks, where every
        non-ASCII character is a "?") settles most such texts. Texts with more go to the regex.
        """
        if self._other_anchor_ascii:
            return True
        text, marks = view.text, view.marks
        wide = 0
        i = marks.find(QUESTION)
        for _ in range(_OTHER_PROBES * 8):  # real question marks are "?" in the marks too: skip, within a bound
            if i < 0:
                return False
            c = text[i]
            if c in self._other_anchors:
                return True
            if c != "?":
                wide += 1
                if wide == _OTHER_PROBES:
                    break
            i = marks.find(QUESTION, i + 1)
        return True


def _by_position(hit: Hit) -> tuple[int, int]:
    """Hits in text order, a longer word before a shorter one starting at the same place."""
    return hit[1], -hit[2]


# Rank of each common Chinese character, 0 the most frequent; a character not listed is rarer than all of them.
_RANK = {c: i for i, c in enumerate(zh_chars.BY_FREQUENCY)}
ANCHOR_SPLITS = 2  # regexes the other-words are split in, by how common their anchors are (see anchor_regexes)


def anchor_index(word: str) -> int:
    """Where ``word`` is anchored: its rarest non-ASCII character (the first of equals), or its first character when
    it has none. A word can only occur where its anchor does, and the rarer the anchor the fewer places to try:
    分析 is looked for at 析, not at the 分 of every 积分 and 分行."""
    candidates = [i for i, c in enumerate(word) if not c.isascii()] or [0]
    return max(candidates, key=lambda i: (_RANK.get(word[i], len(_RANK)), -i))


def _anchored(words: Iterable[str]) -> dict[str, list[tuple[str, int]]]:
    """Anchor character -> ``(word, anchor index)`` of the words anchored at it."""
    out: dict[str, list[tuple[str, int]]] = {}
    for w in sorted(set(words)):
        k = anchor_index(w)
        out.setdefault(w[k], []).append((w, k))
    return out


def anchor_regexes(anchored: dict[str, list[tuple[str, int]]]) -> tuple[re.Pattern[str], ...]:
    """Regexes that together stop at an anchor character only where a word anchored at it occurs around it.

    Each match is the anchor alone (the rest of the word is checked with a lookbehind and a lookahead), so the scan
    goes on from the next character and a word overlapping another is seen too. ``re`` scans for a regex's anchors
    as one character set (~3 ns per character). Where an anchor occurs without its word (the 卡 of 信用卡 for
    持卡人), ``re`` goes on to test every other anchor's alternative before giving up (~1.8 ns each): the anchors are
    split in :data:`ANCHOR_SPLITS` regexes by how common they are, which halves that cost for one more scan (the
    best split for ~100 anchors: 11.3 -> 8.5 µs on the 4 KB mixed bench prompt, 73 -> 60 µs on 4,000 characters
    of Chinese reviews; three regexes gain no more, six lose).
    """
    by_rank = sorted(anchored, key=lambda a: (_RANK.get(a, len(_RANK)), a))
    size = -(-len(by_rank) // ANCHOR_SPLITS)
    return tuple(_anchor_regex({a: anchored[a] for a in by_rank[i : i + size]}) for i in range(0, len(by_rank), size))


def _anchor_regex(anchored: dict[str, list[tuple[str, int]]]) -> re.Pattern[str]:
    groups = []
    for anchor, words in anchored.items():
        alternatives = []
        for w, k in words:
            around = (f"(?<={re.escape(w[: k + 1])})" if k else "") + (
                f"(?={re.escape(w[k + 1 :])})" if k + 1 < len(w) else ""
            )
            alternatives.append(around)
        body = "" if "" in alternatives else "(?:" + "|".join(alternatives) + ")"
        groups.append(re.escape(anchor) + body)
    return re.compile("|".join(groups))


def _lead_groups(phrases: Iterable[str]) -> tuple[dict[str, bytes], dict[bytes, re.Pattern[bytes]]]:
    """Phrases that start with the same anchor ("what is", "what are", "what if", "what's"), each group as one regex.

    An absent phrase costs ``in`` a search through the whole text; one regex that starts with the anchor (a literal,
    which ``re`` scans for quickly) finds which of the group occur in one pass, ~2x faster for three or more. It
    reports every occurrence only when matches cannot hide one another: the anchor does not overlap itself, does not
    start inside any phrase's rest, and no rest is a prefix of another ("build a" / "build an" stay apart).

    Returns:
        ``(phrase -> anchor, anchor -> regex)`` for the groups that qualify.
    """
    leads: dict[str, list[str]] = {}
    for w in phrases:
        anchor = max(_TOKEN.findall(w), key=len)
        if w.startswith(anchor):
            leads.setdefault(anchor, []).append(w)
    group_of: dict[str, bytes] = {}
    group_rx: dict[bytes, re.Pattern[bytes]] = {}
    for anchor, group in leads.items():
        rests = [w[len(anchor) :] for w in group]
        if len(group) < 2 or not _one_pass_exact(anchor, rests):
            continue
        key = anchor.encode("ascii")
        group_rx[key] = re.compile(
            re.escape(key) + b"(?:" + b"|".join(re.escape(r.encode("ascii")) for r in rests) + b")"
        )
        group_of.update(dict.fromkeys(group, key))
    return group_of, group_rx


def _one_pass_exact(anchor: str, rests: list[str]) -> bool:
    """True when ``anchor(?:rest|...)`` found left to right reports every occurrence of every ``anchor + rest``."""
    if any(anchor[:k] == anchor[-k:] for k in range(1, len(anchor))):
        return False  # the anchor overlaps itself ("anana")
    for r in rests:
        if any(o != r and o.startswith(r) for o in rests):
            return False
        if any(anchor.startswith(r[i:]) or r[i:].startswith(anchor) for i in range(len(r))):
            return False  # an occurrence could start inside an earlier match
    return True


@functools.cache
def shared() -> Lexicon:
    """The union of the detection and complexity tables (built on first use), for callers that run both."""
    return Lexicon(
        set(W.DETECT_EN_WORDS) | set(W.COMPLEXITY_EN_WORDS) | set(W.PRESENCE_WORDS),
        set(W.DETECT_OTHER_WORDS) | set(W.COMPLEXITY_OTHER_WORDS),
        stems=W.COMPLEXITY_EN_STEMS,
        located=W.DETECT_EN_WORDS,  # detection checks what follows each one; scoring only counts distinct cues
    )
