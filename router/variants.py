"""Seeded, bilingual generator of disguised sensitive values and of look-alikes, for measuring detection honestly.

``python -m router.variants --split test --seed 2 > variants.jsonl`` writes one labelled case per line. Every
sensitive type gets its values built valid (Luhn cards, mod-97 IBANs, checksummed Chinese IDs, issued SSN ranges)
and then disguised the ways people write them: separators (spaces, dots, slashes, dashes, line breaks), full-width
characters, English number words, Chinese digits (everyday and financial forms), spaced-out characters, spelled
"at"/"dot", abbreviations, loose context words. Look-alikes (order numbers, hotlines, dates, amounts, versions,
timestamps, IP addresses) come from the same generator.

The sentence templates, names and streets are split in two disjoint halves: ``tune`` cases use one, ``test`` cases
the other (and a different seed), so a rule tuned on the tune split is judged on sentences and values it never saw.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from router import words as W

SPLITS = ("tune", "test")
_EN_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_ZH_PLAIN = "〇一二三四五六七八九"
_ZH_PLAIN_ZERO = "零一二三四五六七八九"
_ZH_FINANCIAL = "零壹贰叁肆伍陆柒捌玖"
_FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz@.-+"}


@dataclass(frozen=True)
class Case:
    """One labelled text: the types it holds (empty for a look-alike) and how it was disguised."""

    text: str
    types: tuple[str, ...]
    disguise: str
    split: str
    value: str = ""  # the sensitive value as written into the text (empty for a look-alike)

    def as_json(self) -> str:
        """One JSONL line."""
        return json.dumps(
            {"text": self.text, "types": list(self.types), "disguise": self.disguise, "split": self.split},
            ensure_ascii=False,
        )


# ---------------------------------------------------------------- valid values
def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def card(rng: random.Random) -> str:
    """A Luhn-valid Visa, Mastercard, UnionPay or Amex number."""
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("62", 16), ("62", 19), ("37", 15)])
    return _luhn_complete(prefix, length, rng)


def account(rng: random.Random) -> str:
    """A 16-19 digit account number (no checksum)."""
    return "6" + "".join(rng.choice("0123456789") for _ in range(rng.randint(15, 18)))


def cn_id(rng: random.Random) -> str:
    """An 18-character Chinese resident ID with a valid check character."""
    region = rng.choice(["110105", "310115", "440305", "510107", "330106", "420102"])
    birth = f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = region + birth + f"{rng.randint(0, 999):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]


def cn_mobile(rng: random.Random) -> str:
    """A mainland China mobile number."""
    return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))


def us_phone(rng: random.Random) -> str:
    """A NANP number ``NXX NXX XXXX`` (area and exchange start with 2-9)."""
    return f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(0, 9999):04d}"


def iban(rng: random.Random) -> str:
    """A mod-97-valid IBAN (GB, DE, FR or NL)."""
    country, bban = rng.choice(
        [
            ("GB", lambda: "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + _digits(rng, 14)),
            ("DE", lambda: _digits(rng, 18)),
            ("FR", lambda: _digits(rng, 23)),
            ("NL", lambda: "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + _digits(rng, 10)),
        ]
    )
    b = bban()
    num = int("".join(str(int(c, 36)) for c in b + country + "00"))
    return f"{country}{98 - num % 97:02d}{b}"


def ssn(rng: random.Random) -> str:
    """A 9-digit SSN in issued ranges."""
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"


def passport(rng: random.Random) -> str:
    """A passport number: one or two letters and 7-8 digits."""
    return rng.choice(["E", "G", "P", "K", "EA", "X"]) + _digits(rng, rng.choice([7, 8]))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


# ---------------------------------------------------------------- disguises of a digit string
def grouped(value: str, sep: str, size: int = 4) -> str:
    """``4111 1111 ...`` with ``sep`` between groups of ``size``."""
    return sep.join(value[i : i + size] for i in range(0, len(value), size))


def words_en(value: str, rng: random.Random) -> str:
    """Digits as English words (sometimes "double" for a repeated digit)."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if i + 1 < len(value) and value[i] == value[i + 1] and value[i].isdigit() and rng.random() < 0.3:
            out.append(f"double {_EN_DIGIT_WORDS[int(value[i])]}")
            i += 2
            continue
        out.append(_EN_DIGIT_WORDS[int(value[i])] if value[i].isdigit() else value[i])
        i += 1
    return " ".join(out)


def zh_digits(value: str, table: str) -> str:
    """Digits as Chinese digits from ``table`` (index = digit)."""
    return "".join(table[int(c)] if c.isdigit() else c for c in value)


def fullwidth(value: str) -> str:
    """Full-width forms of ASCII letters, digits and ``@.-+``."""
    return "".join(_FULLWIDTH.get(c, c) for c in value)


def spaced(value: str) -> str:
    """Every character separated by a space."""
    return " ".join(value)


DIGIT_DISGUISES: dict[str, Callable[[str, random.Random], str]] = {
    "plain": lambda v, r: v,
    "spaces": lambda v, r: grouped(v, " "),
    "dots": lambda v, r: grouped(v, "."),
    "slashes": lambda v, r: grouped(v, "/"),
    "dashes": lambda v, r: grouped(v, "-"),
    "newlines": lambda v, r: grouped(v, "\n"),
    "mixed_seps": lambda v, r: "".join(
        c + (r.choice([" ", "-", ".", ""]) if i % 3 == 2 else "") for i, c in enumerate(v)
    ),
    "fullwidth": lambda v, r: fullwidth(grouped(v, r.choice(["", " "]))),
    "en_words": words_en,
    "zh_digits": lambda v, r: zh_digits(v, r.choice([_ZH_PLAIN, _ZH_PLAIN_ZERO])),
    "zh_financial": lambda v, r: zh_digits(v, _ZH_FINANCIAL),
    "spaced": lambda v, r: spaced(v),
}


# ---------------------------------------------------------------- sentences (two disjoint halves per type)
# Each entry: (tune templates, test templates); "{v}" is the disguised value.
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    W.CARD: (
        ("My card {v} was charged twice, can you check?", "请帮我冻结这张卡{v}，谢谢", "card number: {v}"),
        ("I think someone cloned {v}, block it please", "这张{v}的账单不对", "Refund the purchase on {v}."),
    ),
    W.BANK_ACCOUNT: (
        ("Please move 500 to {v} today.", "转账到{v}失败了", "the funds came from {v}"),
        ("Can you confirm the balance of {v}?", "收款账户是{v}吗", "wire it to {v} before Friday"),
    ),
    W.CN_ID: (
        ("身份证号{v}，请帮我核实", "my Chinese ID is {v}", "证件号码：{v}"),
        ("开户时用的是{v}这个身份证", "ID card {v} needs updating", "身份证 {v} 过期了"),
    ),
    W.PHONE: (
        ("call me back on {v}", "我的手机是{v}", "text {v} when it's done"),
        ("reach me at {v} after six", "联系电话{v}", "my number is {v}"),
    ),
    W.EMAIL: (
        ("send the statement to {v}", "邮箱是{v}", "email me: {v}"),
        ("please write to {v} instead", "把对账单发到{v}", "my mail is {v}"),
    ),
    W.IBAN: (
        ("Transfer to {v} bounced, why?", "收款IBAN是{v}", "pay rent to {v}"),
        ("Is {v} a valid destination?", "汇款到{v}要几天", "the landlord gave me {v}"),
    ),
    W.SSN: (
        ("my social is {v}", "SSN {v} for the tax form", "social security number: {v}"),
        ("my ss# is {v}", "here is my social {v}", "SSN: {v}, please update"),
    ),
    W.PASSPORT: (
        ("pass port {v} for the account opening", "护照号码{v}", "PP no: {v}"),
        ("passport number {v}", "我的护照是{v}", "pp#{v} expires soon"),
    ),
}
NAMES_EN = (("Emily Clark", "John Miller", "Maria Garcia"), ("Robert Chen", "Sarah Johnson", "David Okafor"))
NAMES_ZH = (("张伟", "李娜", "王芳"), ("刘洋", "陈静", "赵磊"))
NAME_TEMPLATES = (
    ("my name is {v}", "我叫{v}", "I'm Dr. {v}, calling about my loan", "account holder: {v}"),
    ("this is Mr. {v} speaking", "开户人：{v}", "I am {v}", "户名{v}"),
)
STREETS_EN = (
    ("1600 Pennsylvania Ave NW", "221B Baker Street", "42 Wallaby Way", "12 Elm St"),
    ("350 5th Ave", "10 Downing St", "77 Massachusetts Ave", "8 Kings Rd"),
)
STREETS_ZH = (
    ("北京市朝阳区建国路88号", "上海市浦东新区世纪大道100号3号楼502室"),
    ("广州市天河区体育西路191号", "杭州市西湖区文三路90号2单元301室"),
)
ADDRESS_TEMPLATES = (
    ("I live at {v}, Washington", "地址：{v}", "ship the card to {v}"),
    ("my address is {v}", "家住{v}", "send it to {v}, London"),
)
DOB_VALUES = (("1985-03-12", "March 3, 1990", "1978年11月2日"), ("12/05/1992", "1969-07-21", "1991年6月30日"))
DOB_TEMPLATES = (("date of birth {v}", "出生日期：{v}", "born on {v}"), ("my birthday is {v}", "DOB: {v}", "生日是{v}"))
EMAIL_LOCALS = (("john.smith", "li.na", "wang.lei"), ("zhang.san", "mary.jones", "chen88"))
EMAIL_DOMAINS = (("gmail.com", "qq.com"), ("163.com", "outlook.com"))

LOOKALIKE_TEMPLATES = (
    (
        "order {o} has not shipped yet",
        "订单号{o}什么时候发货",
        "call the hotline 95588 for help",
        "客服电话400-820-8888",
        "paid 1,250.00 on 2023-11-28",
        "the rate is 3.85% for 12 months",
        "app version 3.2.1 crashes",
        "tracking number {o}",
        "log time 20231128103045",
        "from 2023-11-28 to 2023-12-28",
        "server 192.168.100.200 is down",
        "I want one or two cards",
        "we met at the branch at 9",
        "balance 12,345,678.90 CNY",
        "交易流水号{o}",
    ),
    (
        "ticket {o} is still open",
        "发票号码{o}",
        "hotline 800-555-0199? no, 95566",
        "请拨打95533咨询",
        "transfer of 3,000.00 on 2024/01/15",
        "APR 19.99% on purchases",
        "release 10.4.2 of the app",
        "reference {o} in the letter",
        "batch 20240115 processed",
        "between 2024-01-01 and 2024-03-31",
        "gateway 10.0.0.1 timed out",
        "I have three or four questions",
        "meet me at the office at noon",
        "limit 50,000 and fee 1.5%",
        "合同编号{o}",
    ),
)


def _order_number(rng: random.Random) -> str:
    return rng.choice(["ORD", "TK", "INV", ""]) + "2023" + _digits(rng, rng.randint(8, 12))


def generate(split: str, seed: int, per_type: int = 12) -> Iterator[Case]:
    """Cases for one split.

    Args:
        split: ``tune`` or ``test`` (which half of the templates, names and streets to use).
        seed: the random seed (use different seeds for the two splits).
        per_type: cases per (type, disguise) pair for the digit types.

    Yields:
        Sensitive cases for every type and disguise, then look-alikes.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}")
    half = SPLITS.index(split)
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not security)
    makers: dict[str, Callable[[random.Random], str]] = {
        W.CARD: card,
        W.BANK_ACCOUNT: account,
        W.CN_ID: cn_id,
        W.PHONE: lambda r: r.choice([cn_mobile, us_phone])(r),
        W.IBAN: iban,
        W.SSN: ssn,
        W.PASSPORT: passport,
    }
    for kind, make in makers.items():
        for disguise, fn in DIGIT_DISGUISES.items():
            for _ in range(per_type):
                value = make(rng)
                if kind == W.SSN and disguise in ("spaces", "dots", "dashes", "slashes", "newlines"):
                    shown = rng.choice([" ", "-", "."]).join((value[:3], value[3:5], value[5:]))
                elif kind == W.PHONE and disguise in ("spaces", "dots", "dashes") and len(value) == 10:
                    sep = {"spaces": " ", "dots": ".", "dashes": "-"}[disguise]
                    shown = sep.join((value[:3], value[3:6], value[6:]))
                elif kind in (W.IBAN, W.PASSPORT) and disguise in ("en_words", "zh_digits", "zh_financial"):
                    head = 4 if kind == W.IBAN else len(value) - len(value.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
                    shown = value[:head] + " " + fn(value[head:], rng)
                else:
                    shown = fn(value, rng)
                template = rng.choice(TEMPLATES[kind][half])
                yield Case(template.format(v=shown), (kind,), disguise, split, shown)
    yield from _emails(rng, half, split, per_type)
    yield from _words_types(rng, half, split)
    # Values with letters typed in lower or mixed case (a phone keyboard, a hurried chat): their own random stream,
    # so adding them left every case above as it was.
    yield from _letter_case(random.Random(seed * 7919 + 1), half, split, per_type, makers)  # noqa: S311
    for _ in range(per_type * 4):
        for template in LOOKALIKE_TEMPLATES[half]:
            yield Case(template.format(o=_order_number(rng)), (), "lookalike", split)


CASE_DISGUISES: dict[str, Callable[[str, random.Random], str]] = {
    "lowercase": lambda v, r: (v if r.random() < 0.5 else grouped(v, " ")).lower(),
    "mixed_case": lambda v, r: "".join(c.lower() if r.random() < 0.5 else c for c in v),
}


def _letter_case(
    rng: random.Random, half: int, split: str, per_type: int, makers: dict[str, Callable[[random.Random], str]]
) -> Iterator[Case]:
    """The types whose values hold letters (IBAN, passport, Chinese ID with its X), in lower and mixed case."""
    for kind in (W.IBAN, W.PASSPORT, W.CN_ID):
        for disguise, fn in CASE_DISGUISES.items():
            for _ in range(per_type):
                shown = fn(makers[kind](rng), rng)
                template = rng.choice(TEMPLATES[kind][half])
                yield Case(template.format(v=shown), (kind,), disguise, split, shown)


def _emails(rng: random.Random, half: int, split: str, per_type: int) -> Iterator[Case]:
    spellings: dict[str, Callable[[str, str], str]] = {
        "plain": lambda local, dom: f"{local}@{dom}",
        "at_dot_words": lambda local, dom: f"{local.replace('.', ' dot ')} at {dom.replace('.', ' dot ')}",
        "at_word": lambda local, dom: f"{local} at {dom}",
        "brackets": lambda local, dom: f"{local}[at]{dom.replace('.', '[dot]')}",
        "fullwidth": lambda local, dom: fullwidth(f"{local}@{dom}"),
        "spaced": lambda local, dom: spaced(f"{local}@{dom}"),
        "zh_spelled": lambda local, dom: f"{local}艾特{dom.replace('.', '点')}",
        "spaced_at": lambda local, dom: f"{local} @ {dom.replace('.', ' . ')}",
    }
    for disguise, fn in spellings.items():
        for _ in range(per_type):
            shown = fn(rng.choice(EMAIL_LOCALS[half]), rng.choice(EMAIL_DOMAINS[half]))
            yield Case(rng.choice(TEMPLATES[W.EMAIL][half]).format(v=shown), (W.EMAIL,), disguise, split, shown)


def _words_types(rng: random.Random, half: int, split: str) -> Iterator[Case]:
    for template in NAME_TEMPLATES[half]:
        names: tuple[str, ...] = NAMES_ZH[half] if not template.isascii() else NAMES_EN[half]
        for name in names:
            yield Case(template.format(v=name), (W.NAME,), "context", split, name)
    for template in ADDRESS_TEMPLATES[half]:
        streets: tuple[str, ...] = STREETS_ZH[half] if not template.isascii() else STREETS_EN[half]
        for street in streets:
            yield Case(template.format(v=street), (W.ADDRESS,), "context", split, street)
    for street in STREETS_EN[half]:
        name = rng.choice(NAMES_EN[half])
        text = f"I'm Dr. {name.split()[1]}, {street}, Springfield"
        yield Case(text, (W.NAME, W.ADDRESS), "title_street", split, street)
    for template in DOB_TEMPLATES[half]:
        for value in DOB_VALUES[half]:
            yield Case(template.format(v=value), (W.DOB,), "context", split, value)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write one split's cases as JSONL to stdout."""
    ap = argparse.ArgumentParser(prog="python -m router.variants", description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=SPLITS, required=True)
    ap.add_argument("--seed", type=int, default=None, help="default: 1 for tune, 2 for test")
    ap.add_argument("--per-type", type=int, default=12)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else SPLITS.index(args.split) + 1
    for case in generate(args.split, seed, args.per_type):
        sys.stdout.write(case.as_json() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
