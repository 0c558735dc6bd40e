"""Generate the shipped bilingual (English/Chinese) sentiment set deterministically from templates.

The output, ``edge/data/sentiment_bilingual.jsonl``, is committed; re-run with
``.venv-edge/bin/python -m edge.data.generate`` to rebuild it byte for byte. Besides plain "X was great" sentences it
holds negations ("not good", "一点也不差") and contrasts ("A was bad, but B was great") whose label follows the last
clause, so a model has to read word order and not only count sentiment words.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "sentiment_bilingual.jsonl"
DEFAULT_SIZE = 3000
SEED = 20240607

EN_SUBJECTS = [
    "the food", "the service", "this phone", "the hotel room", "the movie", "the battery", "the delivery",
    "the staff", "this app", "the screen", "the price", "the checkout", "the support team", "the camera",
    "the coffee", "the keyboard", "the update", "the flight", "the seats", "the manual",
]  # fmt: skip
EN_POS = [
    "great", "excellent", "wonderful", "fantastic", "reliable", "friendly", "fast", "delicious", "comfortable",
    "impressive", "helpful", "smooth", "lovely", "superb", "clean",
]  # fmt: skip
EN_NEG = [
    "terrible", "awful", "slow", "broken", "rude", "disappointing", "noisy", "overpriced", "useless", "confusing",
    "dirty", "buggy", "horrible", "unreliable", "bland",
]  # fmt: skip
EN_INTENS = ["", "really ", "very ", "absolutely ", "quite ", "so "]
EN_PLAIN = [
    "{s} was {i}{a}.", "I think {s} is {i}{a}.", "Honestly, {s} felt {i}{a}.", "{S} is {i}{a}.",
    "In my opinion {s} was {i}{a}!", "Overall {s} turned out {i}{a}.", "We found {s} {i}{a}.",
]  # fmt: skip
EN_NEGATED = ["{s} was not {a}.", "{S} is not {a} at all.", "I would not call {s} {a}.", "{S} never felt {a}."]
EN_CONTRAST = ["{s1} was {a1}, but {s2} was {a2}.", "Although {s1} was {a1}, {s2} was {a2}."]

ZH_SUBJECTS = [
    "这家餐厅的菜", "服务", "这部手机", "酒店房间", "这部电影", "电池", "快递", "工作人员", "这个应用", "屏幕",
    "价格", "客服", "相机", "咖啡", "键盘", "这次更新", "航班", "座位", "说明书", "外卖",
]  # fmt: skip
ZH_POS = [
    "很好", "非常棒", "令人满意", "很好吃", "很舒服", "很快", "很贴心", "物超所值", "很流畅", "令人惊喜",
    "很干净", "很专业", "特别好用", "太棒了", "很稳定",
]  # fmt: skip
ZH_NEG = [
    "很差", "太糟糕了", "让人失望", "很难吃", "很吵", "太慢了", "太贵了", "没什么用", "很脏", "经常卡顿",
    "很不专业", "一塌糊涂", "非常难用", "很不稳定", "态度恶劣",
]  # fmt: skip
ZH_POS_BARE = ["好", "满意", "好吃", "舒服", "方便", "流畅", "干净", "稳定"]
ZH_NEG_BARE = ["差", "贵", "吵", "慢", "脏", "难用", "卡", "麻烦"]
ZH_PLAIN = ["{s}{a}。", "我觉得{s}{a}。", "说实话，{s}{a}！", "总的来说，{s}{a}。", "{s}真的{a}。", "这次{s}{a}。"]
ZH_NEGATED_POS = ["{s}不{a}。", "{s}一点也不{a}。", "我觉得{s}并不{a}。"]  # negated positive -> negative
ZH_NEGATED_NEG = ["{s}一点也不{a}。", "{s}并不{a}。", "没想到{s}不{a}。"]  # negated negative -> positive
ZH_CONTRAST = ["虽然{s1}{a1}，但是{s2}{a2}。", "{s1}{a1}，不过{s2}{a2}。"]


def _en(rng: random.Random, label: str) -> str:
    kind = rng.random()
    s = rng.choice(EN_SUBJECTS)
    if kind < 0.6:
        adj = rng.choice(EN_POS if label == "positive" else EN_NEG)
        text = rng.choice(EN_PLAIN).format(s=s, S=s.capitalize(), i=rng.choice(EN_INTENS), a=adj)
    elif kind < 0.8:
        # "not <positive>" is negative and vice versa.
        adj = rng.choice(EN_NEG if label == "positive" else EN_POS)
        text = rng.choice(EN_NEGATED).format(s=s, S=s.capitalize(), a=adj)
    else:
        s2 = rng.choice([x for x in EN_SUBJECTS if x != s])
        a1 = rng.choice(EN_NEG if label == "positive" else EN_POS)
        a2 = rng.choice(EN_POS if label == "positive" else EN_NEG)
        text = rng.choice(EN_CONTRAST).format(s1=s, a1=a1, s2=s2, a2=a2)
    return text[0].upper() + text[1:]


def _zh(rng: random.Random, label: str) -> str:
    kind = rng.random()
    s = rng.choice(ZH_SUBJECTS)
    if kind < 0.6:
        adj = rng.choice(ZH_POS if label == "positive" else ZH_NEG)
        return rng.choice(ZH_PLAIN).format(s=s, a=adj)
    if kind < 0.8:
        if label == "positive":
            return rng.choice(ZH_NEGATED_NEG).format(s=s, a=rng.choice(ZH_NEG_BARE))
        return rng.choice(ZH_NEGATED_POS).format(s=s, a=rng.choice(ZH_POS_BARE))
    s2 = rng.choice([x for x in ZH_SUBJECTS if x != s])
    a1 = rng.choice(ZH_NEG if label == "positive" else ZH_POS)
    a2 = rng.choice(ZH_POS if label == "positive" else ZH_NEG)
    return rng.choice(ZH_CONTRAST).format(s1=s, a1=a1, s2=s2, a2=a2)


def generate(size: int = DEFAULT_SIZE, seed: int = SEED) -> list[dict[str, str]]:
    """Build ``size`` unique, label-balanced, language-balanced rows ``{"text", "label", "lang"}``.

    Args:
        size: number of rows (even numbers give an exact 50/50 label split).
        seed: RNG seed; the same seed always gives the same rows in the same order.

    Returns:
        The rows, shuffled.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible data, not a secret
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    i = 0
    while len(rows) < size:
        label = ("positive", "negative")[i % 2]
        lang = ("en", "en", "zh", "zh")[i % 4]
        text = _en(rng, label) if lang == "en" else _zh(rng, label)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label, "lang": lang})
            i += 1
    rng.shuffle(rows)
    return rows


def write_jsonl(rows: list[dict[str, str]], path: Path) -> None:
    """Write rows as UTF-8 JSON lines, atomically (temp file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m edge.data.generate [--size N] [--out PATH]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    write_jsonl(generate(args.size), args.out)
    print(f"wrote {args.size} rows to {args.out}")


if __name__ == "__main__":
    main()
