"""Sensitive-data detection: which kinds of personal data a text holds and where, never the values.

Three passes over the text: numbers (digit runs found on the text's byte view, ``router.textview``, then matched,
then classified by ID checksum, phone shape, Luhn and context words), English trigger words and Chinese trigger
words (both from ``router.lexicon``, shared with complexity scoring). Each trigger is then checked with a small
anchored regex; every regex is bounded (no nested unbounded repeats, possessive quantifiers where a search scans a
window) so time grows linearly with the text. When a number or phrase is ambiguous and a context word says it is
personal, it is flagged: a missed detection sends customer data to the cloud, a false one only keeps a request
on-prem.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from router import normalize
from router import words as W
from router.lexicon import Hit, Lexicon
from router.textview import DIGIT, LETTER, MATH, NEWLINE, NUMBER_SEP, QUESTION, TAB, TextView
from router.words import (
    ADDRESS,
    BANK_ACCOUNT,
    CARD,
    CN_ID,
    DOB,
    EMAIL,
    IBAN,
    KEYWORD,
    NAME,
    PASSPORT,
    PHONE,
    SSN,
)

CONTEXT_WINDOW = 28  # characters before a number searched for a context word


def _country_alternation(codes: Iterable[str]) -> str:
    """``A[DELTZ]|B[AEGHIRY]|...``: re tries alternatives one by one, so 24 first letters beat ~90 whole codes."""
    by_first: dict[str, str] = {}
    for code in sorted(codes):
        by_first[code[0]] = by_first.get(code[0], "") + code[1]
    return "|".join(f"{first}[{seconds}]" for first, seconds in by_first.items())


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: its type and its span ``text[start:end]`` (the value itself is never kept)."""

    type: str
    start: int
    end: int


# ---------------------------------------------------------------- numbers
# 7-35 digits with up to 3 spaces, dashes, brackets, dots, slashes or line breaks between two of them (a disguised
# "4111.1111.1111.1111" or "4111/1111/..." is one number), optional +/00 prefix and a trailing ID check letter X.
_NUMBER = re.compile(r"[+(0-9](?:[ \-()./\t\r\n]{0,3}[0-9]){6,34}[Xx]?")
# _NUMBER starts with a character class, so ``re`` tests every character of the text (~4 ns each). On the view's
# marks (digits "0", separators "-") the stretches that could hold a match (at least 6 digits, at most 3 separators
# between two of them) are found with a pattern that starts with one literal (~1 ns per character); _NUMBER then runs
# only there.
# Separators in the marks: "-" (space, dash, brackets), "=" (slash among the math signs), "." (dot and any other
# punctuation), newline, tab; _NUMBER then decides which of them may really sit inside a number.
_NUMBER_MIN_DIGITS = 7  # the fewest digits one match of _NUMBER holds
_NUMBER_MAX_DIGITS = 35  # the most digits one match of _NUMBER holds
_RUN_SEPS = b"[" + re.escape(NUMBER_SEP + MATH + b"." + NEWLINE + TAB) + b"]"
# A run never starts right after a digit (the run from that one would hold it): "(?<!00)" ends those attempts at once
# instead of walking the rest of a short number again. The five required steps are written out: re runs them ~10%
# faster than a counted repeat.
_RUN_STEP = b"(?:" + _RUN_SEPS + b"{0,3}+" + re.escape(DIGIT) + b")"
_DIGIT_RUN = re.compile(re.escape(DIGIT) + b"(?<!00)" + _RUN_STEP * 5 + _RUN_STEP + b"*+")
# The same runs on the digit view (lower-case letters kept, every separator as "-", see _DIGIT_VIEW), less the runs
# _number_matches would only skip in Python (~1 µs each; nine per 4 KB of the bench text): an order number glued to
# letters (ORD20231128001234), i.e. 7-35 digits and nothing after them that continues the run, right after a letter
# with no digit and no non-ASCII character in the ten characters before it, and no IBAN country code (any case)
# right before the digits. (Such a run has no IBAN head near it, and one _NUMBER match covers it.)
_DIGIT_VIEW = bytes.maketrans(
    bytes(c for c in range(128) if not chr(c).isalnum() and chr(c) not in "?|") + b"0123456789",
    b"-" * sum(1 for c in range(128) if not chr(c).isalnum() and chr(c) not in "?|") + b"0" * 10,
)
# Checked once a run holds six digits (ordinary numbers, "3.85", "95588", never get that far): six digits glued to a
# letter with no digit and no "?" in the nine characters before it and no country code right before the digits; then
# 1-29 more digits (7-35 in all) and nothing that continues the run.
_SKIPPED_RUN = (
    b"(?<=[^0?]{9}[a-z]0{6})(?<!(?:"
    + _country_alternation(c.lower() for c in W.IBAN_COUNTRIES).encode("ascii")
    + b")0{6})0{%d,%d}+(?!-{0,3}+0)" % (_NUMBER_MIN_DIGITS - 6, _NUMBER_MAX_DIGITS - 6)
)
_DIGIT_RUN_KEPT = re.compile(b"0(?<!00)" + b"(?:-{0,3}+0)" * 5 + b"(?!" + _SKIPPED_RUN + b")(?:-{0,3}+0)*+")
_RUN_LEAD = 4  # a match may start this many characters before its first digit ("+", then 3 separators)
_LETTER = LETTER[0]  # an ASCII letter in the marks
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
_NANP_SHAPE = re.compile(r"\(?\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}")
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)")
_DECIMAL_TAIL = re.compile(r"\.\d{1,2}$")  # "1234567.89": an amount's cents are not part of the number

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# ---------------------------------------------------------------- e-mail
_EMAIL_LEFT = re.compile(r"[A-Za-z0-9._%+\-]{1,64}+$")
_EMAIL_RIGHT = re.compile(r"[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,6}\.[A-Za-z]{2,24}")

# ---------------------------------------------------------------- IBAN, passport, SSN with context
_IBAN_ANYCASE = re.compile(r"(?i)[a-z]{2}\d{2}(?:[ \-./\n]?[a-z0-9]{4}){2,7}(?:[ \-./\n]?[a-z0-9]{1,3})?")
_IBAN_SEPS = str.maketrans("", "", " -./\n")
# How an IBAN that can pass iban_ok starts (country code, check digits): one cheap search rules out most numbers
# glued to letters (order numbers, codes) before any IBAN-shaped match is tried. Any case: people type IBANs in
# lower case (gb33bukb...) as readily as in capitals; the mod-97 check guards precision either way.
_IBAN_HEAD = re.compile(f"(?:{_country_alternation(W.IBAN_COUNTRIES)})[ \\-./]?\\d[ \\-./]?\\d", re.IGNORECASE)
# Any separator between any two characters ("GB5 2EA-WY0 9832..."): tried only where _IBAN_ANYCASE found nothing.
_IBAN_LOOSE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}(?:[ \-./]?[A-Z0-9]){13,32}")
_PASSPORT_NO = re.compile(r"(?<![A-Za-z0-9])(?:[A-Za-z]{1,2}[ \-./\n]?(?:\d[ \-./\n]?){5,8}\d|\d{9})(?![A-Za-z0-9])")

# ---------------------------------------------------------------- names
_EN_NAME_AFTER = re.compile(
    r"[ \t]*[:：]?[ \t]*(?:(?:mr|mrs|ms|dr|miss)\.?[ \t]+)?([A-Za-z][A-Za-z'\-]{0,30}(?:[ \t]+[A-Za-z][A-Za-z'\-]{0,30}){0,2})",
    re.I,
)
_ZH_NAME_AFTER = re.compile(r"[ \t]*([：:]?)[ \t]*(?:是|为)?[ \t]*([\u4e00-\u9fff·]{2,4})")

# ---------------------------------------------------------------- addresses
_EN_ADDR_AFTER = re.compile(r"[ \t]*[:：]?[ \t]*((?:no\.|apt|flat|unit|room|suite|\d|[A-Z])[^\n.;!?]{2,80})", re.I)
_ZH_ADDR_AFTER = re.compile(r"[ \t]*[：:]?[ \t]*(?:是|为|在)?[ \t]*([\u4e00-\u9fff0-9A-Za-z\-#]{2,40})")

# ---------------------------------------------------------------- dates of birth
_DATE = re.compile(
    r"\d{4}[ \t]*[-/.年][ \t]*\d{1,2}(?:[ \t]*[-/.月][ \t]*\d{1,2}[ \t]*日?)?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?[ \t]+\d{1,2}(?:st|nd|rd|th)?,?[ \t]+\d{4}|"
    r"\d{1,2}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,?[ \t]+\d{4}|"
    r"\d{4}",
    re.I,
)
_DOB_WINDOW = 24
_PASSPORT_WINDOW = 30
# Families whose value follows the context word within a window: (value pattern, window in characters).
_VALUE_AFTER = {DOB: (_DATE, _DOB_WINDOW), PASSPORT: (_PASSPORT_NO, _PASSPORT_WINDOW)}


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (ASCII digits only) passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def cn_id_ok(value: str) -> bool:
    """True for an 18-character Chinese resident ID with a plausible region, birth date and a valid check digit."""
    if len(value) != 18 or not value[:17].isdigit() or value[0] not in "12345678":
        return False
    year, month, day = int(value[6:10]), int(value[10:12]), int(value[12:14])
    if not (1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31):
        return False
    s = sum((ord(c) - 48) * w for c, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[s % 11] == value[17].upper()


def iban_ok(value: str) -> bool:
    """True when ``value`` (spaces and dashes allowed) is an IBAN of plausible length whose mod-97 check equals 1."""
    s = value.translate(_IBAN_SEPS).upper()
    # isascii: the case-blind IBAN patterns also match "İ", "ı", "ſ" and the Kelvin sign, which int(c, 36) rejects
    if not (15 <= len(s) <= 34 and s[:2] in W.IBAN_COUNTRIES and s[2:4].isdigit() and s.isalnum() and s.isascii()):
        return False
    rearranged = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in rearranged)
    return int(num) % 97 == 1


def ssn_ok(digits: str) -> bool:
    """True for a 9-digit US SSN outside the never-issued ranges (area 000/666/9xx, group 00, serial 0000)."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return len(digits) == 9 and area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _last(ctx: str, words: Iterable[str]) -> int:
    """Rightmost position of any of ``words`` in ``ctx`` (-1 when none): the nearest context word wins.

    An English word counts only as a whole word ("ref" is not in "refund"); Chinese words count anywhere.
    """
    best = -1
    for w in words:
        i = ctx.rfind(w)
        while i > best and w.isascii() and not _whole_word(ctx, i, i + len(w)):
            i = ctx.rfind(w, 0, i)
        if i > best:
            best = i
    return best


def _whole_word(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalpha())


def _classify_number(raw: str, ctx: str) -> str | None:
    """Type of one number found in the text, given the lower-cased text just before it; None for a look-alike."""
    norm = raw
    if _DECIMAL_TAIL.search(norm):
        norm = norm[: norm.rindex(".")]
    plus = norm.startswith("+") or norm.startswith("00")
    digits = "".join(c for c in norm if c.isdigit())
    check_x = norm[-1] in "Xx"
    n = len(digits)
    if (n == 18 or (n == 17 and check_x)) and cn_id_ok(digits + ("X" if check_x else "")):
        return CN_ID
    if check_x:
        return CN_ID if _last(ctx, W.ID_CTX) >= 0 and n == 17 else None
    if plus and 8 <= n - (2 if norm.startswith("00") else 0) <= 15:
        return PHONE
    if n == 11 and digits[0] == "1" and digits[1] in "3456789":
        return PHONE
    if n == 13 and digits.startswith("861") and digits[3] in "3456789":
        return PHONE
    if n == 10 and digits.startswith(W.HOTLINE_PREFIXES):
        return None  # a 400/800 service hotline, whatever the context says
    order_at = _last(ctx, W.ORDER_CTX)
    personal_at = max(_last(ctx, W.ACCOUNT_CTX), _last(ctx, W.PHONE_CTX), _last(ctx, W.ID_CTX), _last(ctx, W.SSN_CTX))
    if order_at > personal_at:
        return None
    if 13 <= n <= 19 and luhn_ok(digits):
        return CARD
    if n == 9 and _SSN_SHAPE.fullmatch(norm) and ssn_ok(digits):
        return SSN
    if personal_at < 0:
        if (
            _NANP_SHAPE.fullmatch(norm)
            and not digits.startswith(W.HOTLINE_PREFIXES)
            and digits[0] not in "01"
            and digits[3] not in "01"
        ):
            return PHONE
        if n >= W.LONG_RUN_DIGITS and not _known_lookalike(digits, norm):
            return BANK_ACCOUNT  # fail closed: a long number nobody explained is treated as an account number
        return None
    if _last(ctx, W.SSN_CTX) >= 0 and n == 9:
        return SSN
    if _last(ctx, W.ID_CTX) >= 0 and n in (15, 18):
        return CN_ID
    if _last(ctx, W.ACCOUNT_CTX) >= 0 and 8 <= n <= 34:
        return BANK_ACCOUNT
    if _last(ctx, W.PHONE_CTX) >= 0 and 7 <= n <= 15:
        return PHONE
    if n >= W.LONG_RUN_DIGITS and not _known_lookalike(digits, norm):
        return BANK_ACCOUNT
    return None


def _is_date(d: str) -> bool:
    """``YYYYMMDD`` with a year 1900-2099 and a valid month and day."""
    y, m, day = int(d[:4]), int(d[4:6]), int(d[6:8])
    return 1900 <= y <= 2099 and 1 <= m <= 12 and 1 <= day <= 31


def _known_lookalike(digits: str, written: str) -> bool:
    """A long digit run that is a date-led timestamp (20231128103045), dates or years back to back
    (2023112820231228, "2019 2020 2021 2022") or an IPv4 address (192.168.100.200, as written)."""
    if _IPV4.fullmatch(written):
        return True
    n = len(digits)
    if n in W.TIMESTAMP_LENGTHS and _is_date(digits[:8]):
        rest = digits[8:]
        return not rest or (int(rest[:2]) < 24 and (len(rest) < 4 or int(rest[2:4]) < 60))
    if n % 4 == 0 and written != digits and all(1900 <= int(digits[i : i + 4]) <= 2099 for i in range(0, n, 4)):
        return True  # years listed one after another ("2019 2020 2021 2022")
    return n % 8 == 0 and all(_is_date(digits[i : i + 8]) for i in range(0, n, 8))


_EN_FAMILY = W.EN_TRIGGERS
_ZH_FAMILY = W.ZH_TRIGGERS
EN_WORDS = W.DETECT_EN_WORDS
OTHER_WORDS = W.DETECT_OTHER_WORDS
_ZH_STREET_TAIL = re.compile(r"[ \t]*\d{1,5}[ \t]*(?:号|弄)(?:[ \t]*[\d\-]{1,5}[ \t]*(?:栋|幢|号楼|单元|室|楼))*")
_ZH_REGION_TAIL = re.compile(r"[\u4e00-\u9fff]{1,6}(?:区|县)[\u4e00-\u9fff]{1,10}(?:路|街|道|镇|乡|村)")
_HAN_BEFORE = re.compile(r"[\u4e00-\u9fff]{1,10}$")
_ZH_ROOM_BEFORE = re.compile(r"[\u4e00-\u9fff0-9A-Za-z\-#]{0,24}?\d{1,5}[ \t]*$")
_NAME_WORD = r"[A-Z][a-z'\-]{1,30}"
_TITLE_AFTER = re.compile(rf"\.?[ \t]+({_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}})")
_INTRO_AFTER = re.compile(rf"[ \t]+(?:(?i:{'|'.join(W.NAME_TITLES)})\.?[ \t]+)?({_NAME_WORD}[ \t]+{_NAME_WORD})")
_STREET_NAME = r"(?:[A-Z][A-Za-z'\-]+|\d{1,3}(?:st|nd|rd|th))"
_EN_STREET = re.compile(
    rf"\d{{1,6}}[A-Za-z]?,?[ \t]+(?:{_STREET_NAME}[ \t]+){{1,4}}(?:{'|'.join(W.STREET_SUFFIXES)})\b\.?"
    rf"(?:[ \t]+(?:{'|'.join(W.COMPASS)})\b)?"
)


class Detector:
    """Finds sensitive data in text. Build once (patterns compile here), call :meth:`scan` per text.

    Three passes over the text (numbers, English trigger words, Chinese trigger words); each hit is then checked
    with a small anchored regex, so the cost grows linearly with the text. English trigger words count as whole
    words ("name is", not "username is").

    Args:
        custom_patterns: ``(type, regex)`` pairs from config; each match is reported as that type.
        custom_keywords: lower-case words; any occurrence is reported as ``keyword``.
    """

    def __init__(self, custom_patterns: Iterable[tuple[str, str]] = (), custom_keywords: Iterable[str] = ()) -> None:
        self._custom = tuple((name, re.compile(rx)) for name, rx in custom_patterns)
        self._keywords = tuple(k.lower() for k in custom_keywords if k)

    def scan(
        self,
        text: str,
        low: str | None = None,
        hits: tuple[list[Hit], list[Hit]] | None = None,
        view: TextView | None = None,
        present: set[str] | None = None,
        plain: bool = False,
    ) -> list[Finding]:
        """All findings in ``text`` and in its canonical view (``router.normalize``), ordered by position.

        Args:
            text: the text to scan (any language; English and Chinese are covered).
            low: ``text.lower()`` if the caller already has it (not needed: the view is enough).
            hits: word hits of a :class:`~router.lexicon.Lexicon` that includes this module's words (saves the two
                word passes when complexity scoring needs them too); words of other tables are ignored.
            view: the text's :class:`~router.textview.TextView` if the caller already has it (saves one pass).
            present: the words of ``router.words.PRESENCE_WORDS`` the same word pass found (None: looked up).
            plain: take no shortcut (the reference the shortcuts are tested against): the number regex over the
                whole text, every word located, the canonical view built without the word pass's findings and
                with every at-spelling place tried.

        Returns:
            Findings with type and span in ``text`` (a value found only in the canonical view is reported over the
            stretch of text it came from); overlapping findings of one type are merged.
        """
        if view is None:
            view = TextView.of(text, low)
        if plain:
            hits, present = _own_lexicon().hits_in(view), None
        elif hits is None:
            found = _own_lexicon().words(view)
            hits, present = (found.en, found.other), found.present
        out = self._scan_view(text, view, hits, plain)
        canon = normalize.canonical(text, view, present, None if plain else hits[1], plain=plain)
        if canon.changed:
            cview = TextView.of(canon.text)
            cfound = _own_lexicon().words(cview)
            for f in self._scan_view(canon.text, cview, (cfound.en, cfound.other), plain):
                start, end = canon.raw_span(f.start, f.end)
                out.append(Finding(f.type, start, end))
        return _merge_same_type(out)

    def _scan_view(
        self, text: str, view: TextView, hits: tuple[list[Hit], list[Hit]], plain: bool = False
    ) -> list[Finding]:
        out: list[Finding] = []
        self._numbers(view, out, plain)
        if "@" in text:
            self._emails(text, out)
        en_hits, other_hits = hits
        for word, s, e in en_hits:
            if word in _EN_FAMILY:
                self._en_hit(text, word, s, e, out)
        for word, s, e in other_hits:
            if word in _ZH_FAMILY:
                self._zh_hit(text, word, s, e, out)
        for name, rx in self._custom:
            out.extend(Finding(name, m.start(), m.end()) for m in rx.finditer(text) if m.end() > m.start())
        if self._keywords:
            lowered = view.lower if view.lower is not None else text.lower()
            for kw in self._keywords:
                i = lowered.find(kw)
                while i >= 0:
                    out.append(Finding(KEYWORD, i, i + len(kw)))
                    i = lowered.find(kw, i + len(kw))
        return out

    @staticmethod
    def _numbers(view: TextView, out: list[Finding], plain: bool = False) -> None:
        text = view.text
        for m in _number_matches(view, plain):
            s, e = m.start(), m.end()
            if s >= 2 and text[s - 1].isascii() and text[s - 1].isalpha():
                # Letters glued to digits: an IBAN (DE89 3704...) or a code (ORD2023..., AB12...), never a bare number.
                if not _iban_near(text, view.marks, s, e, out) and _iban_country_run(text, s, m.group()):
                    out.append(Finding(BANK_ACCOUNT, s - 2, e))  # IBAN-shaped, checksum unreadable: fail closed
                continue
            if e < len(text) and text[e].isascii() and text[e].isalnum():
                continue
            kind = _classify_number(m.group(), view.lower_slice(max(0, s - CONTEXT_WINDOW), s))
            if kind is not None:
                out.append(Finding(kind, s, e))
            elif s >= 5:
                _iban_near(text, view.marks, s, e, out)

    @staticmethod
    def _emails(text: str, out: list[Finding]) -> None:
        i = text.find("@")
        while i >= 0:
            left = _EMAIL_LEFT.search(text, max(0, i - 64), i)
            right = _EMAIL_RIGHT.match(text, i + 1)
            if left and right:
                out.append(Finding(EMAIL, left.start(), right.end()))
            i = text.find("@", i + 1)

    @staticmethod
    def _en_hit(text: str, word: str, s: int, e: int, out: list[Finding]) -> None:
        family = _EN_FAMILY[word]
        if word[-1].isalnum() and e < len(text) and text[e].isascii() and text[e].isalnum():
            return  # inside a longer word ("street" in "streets" is fine, "dr" in "drive" is not a title)
        if word[0].isalnum() and s > 0 and text[s - 1].isascii() and text[s - 1].isalnum():
            return
        if family == "title":
            m = _TITLE_AFTER.match(text, e)
            if m:
                out.append(Finding(NAME, m.start(1), m.end(1)))
            return
        if family == "intro":
            m = _INTRO_AFTER.match(text, e)
            if m and m.group(1).split()[0].lower() not in W.EN_STOP:
                out.append(Finding(NAME, m.start(1), m.end(1)))
            return
        if family == "spelled":
            return  # the canonical view writes these out as addresses
        if family == NAME:
            m = _EN_NAME_AFTER.match(text, e)
            if m:
                kept_end = -1
                for w in re.finditer(r"[A-Za-z][A-Za-z'\-]*", m.group(1)):
                    if w.group().lower() in W.EN_STOP:
                        break
                    kept_end = m.start(1) + w.end()
                if kept_end > 0:
                    out.append(Finding(NAME, m.start(1), kept_end))
        elif family == ADDRESS:
            m = _EN_ADDR_AFTER.match(text, e)
            if m and m.group(1).split()[0].lower() not in W.EN_STOP:
                out.append(Finding(ADDRESS, m.start(1), m.end(1)))
        elif family in _VALUE_AFTER:
            _value_after(text, family, e, out)
        elif family == IBAN:
            for m in _IBAN_ANYCASE.finditer(text, e, e + 60):
                if iban_ok(m.group()):
                    out.append(Finding(IBAN, m.start(), m.end()))
        else:  # a street word: look back for "12 Baker Street"
            lo = max(0, s - 60)
            for m in _EN_STREET.finditer(text, lo, e + 5):
                if m.end() >= e - 1:
                    out.append(Finding(ADDRESS, m.start(), m.end()))
                    break

    @staticmethod
    def _zh_hit(text: str, word: str, s: int, e: int, out: list[Finding]) -> None:
        family = _ZH_FAMILY[word]
        if family == NAME:
            m = _ZH_NAME_AFTER.match(text, e)
            if m:
                strong = bool(m.group(1)) or word in ("姓名", "户名", "开户人", "持卡人", "收款人")
                n = _zh_name_span(m.group(2), strong=strong)
                if n:
                    out.append(Finding(NAME, m.start(2), m.start(2) + n))
        elif family == ADDRESS:
            m = _ZH_ADDR_AFTER.match(text, e)
            if m and (
                (word in ("住址", "地址", "户籍") and text[e : e + 2].lstrip(" \t")[:1] in ("：", ":"))
                or _any_char(m.group(1), W.ZH_ADDR_SHAPE_CHARS)
            ):
                out.append(Finding(ADDRESS, m.start(1), m.end(1)))
        elif family in _VALUE_AFTER:
            _value_after(text, family, e, out)
        elif family == "zh_room":
            start = _room_start(text, s)
            if start is not None:
                out.append(Finding(ADDRESS, start, e))
        elif family == "spelled":
            return  # the canonical view undoes these
        elif family == "zh_street":
            m = _ZH_STREET_TAIL.match(text, e)  # the house number first: the search before it is the dearer check
            before = _HAN_BEFORE.search(text, max(0, s - 10), s) if m else None
            if m and before:
                out.append(Finding(ADDRESS, before.start(), m.end()))
        else:  # 省/市 followed by a district and a street, town or village
            m = _ZH_REGION_TAIL.match(text, e)
            before = _HAN_BEFORE.search(text, max(0, s - 6), s) if m else None
            if m and before:
                out.append(Finding(ADDRESS, before.start(), m.end()))


def _room_start(text: str, s: int) -> int | None:
    """Where the room or building number that ends right before ``text[s]`` starts (None: none does).

    ``_ZH_ROOM_BEFORE`` tries its lazy pattern from each of the 30 places before the word (~9 µs); a number must end
    right before it (spaces, tabs and one final line break allowed, as ``[ \t]*$`` reads), so without a digit there
    nothing is searched: a text of 室室室... paid the search at every character (~200 ms per 64 KB).
    """
    window = text[max(0, s - 30) : s]
    if not (window[:-1] if window.endswith("\n") else window).rstrip(" \t")[-1:].isdigit():
        return None
    m = _ZH_ROOM_BEFORE.search(text, max(0, s - 30), s)
    return None if m is None else m.start()


def _number_matches(view: TextView, plain: bool = False) -> Iterator[re.Match[str]]:
    """The matches of _NUMBER that can lead to a finding, in order, as a scan of the whole text would find them.

    Left out without running _NUMBER: a digit run glued to a letter before it (ORD20231128001234) that is short
    enough for one match and has no IBAN head near it; :meth:`Detector._numbers` would only look for an IBAN there.
    Full-width digits are read in the canonical view (``router.normalize``), where they are ASCII.
    """
    text = view.text
    if plain:  # the reference the prefilter is tested against
        yield from _NUMBER.finditer(text)
        return
    marks = view.marks
    done = 0  # a whole-text scan goes on after the end of its last match
    # The digit view has the text's offsets unless an "İ" made ``low`` from text.lower() (then the marks serve).
    runs = (
        _DIGIT_RUN.finditer(marks)
        if view.lower is not None
        else _DIGIT_RUN_KEPT.finditer(view.low.translate(_DIGIT_VIEW))
    )
    for run in runs:
        start, end = run.span()
        if start >= 2 and marks[start - 1] == _LETTER:
            digits = marks.count(DIGIT, start, end)
            if digits <= _NUMBER_MAX_DIGITS and text[start - 2 : start].upper() not in W.IBAN_COUNTRIES:
                # _iban_head_near(text, marks, start, country_before=False), inlined (nine order numbers per 4 KB
                # of the bench text): no digit and no non-ASCII character ("?" in the marks) in the ten characters
                # before `start` rules out an IBAN head without a search.
                near = max(2, start - 10)
                head = (marks.find(DIGIT, near, start) >= 0 or marks.find(QUESTION, near, start) >= 0) and (
                    _IBAN_HEAD.search(text, near - 2, start + 4) is not None
                )
                # digits only (no separator): one match covers them when there are enough for one
                if not head and (
                    (digits == end - start and digits >= _NUMBER_MIN_DIGITS) or _one_match(text, start, end)
                ):
                    continue  # a letter cannot start a match, so the one match starts at `start`: a code, not an IBAN
        for m in _NUMBER.finditer(text, max(start - _RUN_LEAD, done), end + 1):  # + 1: a check "X"
            done = m.end()
            yield m


def _one_match(text: str, start: int, end: int) -> bool:
    """True when one match of _NUMBER covers the whole digit run ``text[start:end]`` (the marks' separators are
    wider than the number's: a "+" or "," inside the run starts another match)."""
    m = _NUMBER.match(text, start)
    return m is not None and m.end() >= end


def _iban_head_near(text: str, marks: bytes, s: int) -> bool:
    """True when an IBAN that passes iban_ok could start at ``s`` or up to 12 characters before it."""
    lo = max(0, s - 12)
    if marks.find(DIGIT, lo + 2, s) < 0 and text[lo + 2 : s].isascii():
        # A head starting at lo or later has its check digits at lo + 2 or later; with none there before s, they
        # can only be text[s:s+2] (ASCII, so the marks see every digit): no search needed.
        digits = text[s : s + 2]
        return len(digits) == 2 and digits.isdecimal() and text[s - 2 : s].upper() in W.IBAN_COUNTRIES
    return _IBAN_HEAD.search(text, lo, s + 4) is not None


def _iban_country_run(text: str, s: int, number: str) -> bool:
    """True when exactly two letters (any case) naming an IBAN country are glued to a long digit run (DE7 436 ...)."""
    return (
        text[s - 2 : s].upper() in W.IBAN_COUNTRIES
        and (s < 3 or not (text[s - 3].isascii() and text[s - 3].isalpha()))
        and sum(c.isdigit() for c in number) >= W.LONG_RUN_DIGITS
    )


def _iban_near(text: str, marks: bytes, s: int, e: int, out: list[Finding]) -> bool:
    """Check for an IBAN around a number (its country code and check digits come just before the digits); True when
    one was found."""
    if not _iban_head_near(text, marks, s):
        return False  # no IBAN can start at or before the number: order numbers and codes (ORD2023...) end here
    for m in _IBAN_ANYCASE.finditer(text, max(0, s - 12), min(len(text), e + 8)):
        if m.start() <= s and iban_ok(m.group()):
            out.append(Finding(IBAN, m.start(), m.end()))
            return True
    for m in _IBAN_LOOSE.finditer(text, max(0, s - 16), min(len(text), e + 8)):
        for end in range(m.end(), m.start() + 14, -1):  # the loose match may run into the next word
            if m.start() <= s and iban_ok(text[m.start() : end]):
                out.append(Finding(IBAN, m.start(), end))
                return True
    return False


@functools.cache
def _own_lexicon() -> Lexicon:
    """Detection's words alone, for scans without a word pass (the handler passes the shared one)."""
    return Lexicon((*EN_WORDS, *W.PRESENCE_WORDS), OTHER_WORDS, located=EN_WORDS)


def _value_after(text: str, family: str, e: int, out: list[Finding]) -> None:
    """A date of birth or passport number shortly after its context word (same shapes in English and Chinese)."""
    pattern, window = _VALUE_AFTER[family]
    m = pattern.search(text, e, e + window)
    if m:
        out.append(Finding(family, m.start(), m.end()))


def _zh_name_span(candidate: str, *, strong: bool) -> int:
    """Length of the Chinese name at the start of ``candidate`` (0 when it does not look like a name)."""
    compound = candidate[:2] in W.ZH_COMPOUND
    if not strong and not compound and candidate[0] not in W.ZH_SURNAMES:
        return 0
    if candidate[0] in W.ZH_NAME_STOP:
        return 0
    limit = 4 if compound else 3
    n = 1
    while n < min(limit, len(candidate)) and candidate[n] not in W.ZH_NAME_STOP:
        n += 1
    return n if n >= 2 else 0


def _merge_same_type(findings: list[Finding]) -> list[Finding]:
    """Sort by position and fuse overlapping findings of one type (two context words can find the same value)."""
    findings.sort(key=lambda f: (f.start, f.end))
    merged: list[Finding] = []
    open_by_type: dict[str, int] = {}
    for f in findings:
        j = open_by_type.get(f.type)
        if j is not None and f.start < merged[j].end:
            if f.end > merged[j].end:
                merged[j] = Finding(f.type, merged[j].start, f.end)
            continue
        open_by_type[f.type] = len(merged)
        merged.append(f)
    return merged


def _any_char(s: str, chars: str) -> bool:
    return any(c in s for c in chars)


@functools.cache
def default_detector() -> Detector:
    """A shared detector without custom patterns (built on first use)."""
    return Detector()
