"""Complexity scoring: is a request worth the cloud model? English and Chinese, not fooled by length alone.

Features are counts of cues (asks, reasoning/analysis/derivation verbs, math, code, pasted documents or tables,
conversation depth, simple-question cues), each squashed with ``log1p`` so a long friendly message does not outweigh a
short "derive ... and prove ..." request. A logistic model (weights in ``complexity_weights.json`` shipped in this
folder) turns them into a score in [0, 1]. Two word passes (English on the text's lower-case ASCII view, Chinese on
the text); ASCII punctuation is counted on the view's marks (``router.textview``), not with a regex.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from router import textview
from router.lexicon import Lexicon, Words
from router.textview import TextView

WEIGHTS_FILE = Path(__file__).with_name("complexity_weights.json")
FEATURES = ("asks", "reasoning", "math", "code", "document", "depth", "simple", "length")

_EN = {
    "reasoning": (
        "derive",
        "derivation",
        "prove",
        "proof",
        "analy",
        "compare",
        "comparison",
        "evaluat",
        "simulat",
        "calculat",
        "estimat",
        "optimi",
        "justify",
        "argue",
        "argument",
        "trade-off",
        "tradeoff",
        "step by step",
        "what if",
        "scenario",
        "forecast",
        "model",
        "strategy",
        "pros and cons",
        "sensitivity",
        "regression",
        "monte carlo",
        "amortiz",
        "amortis",
        "compound",
        "npv",
        "irr",
        "portfolio",
        "hedg",
        "assess",
        "reconcil",
        "explain why",
        "recommend",
        "break down",
        "breakdown",
        "implication",
        "impact",
        "quantif",
        "stress test",
        "backtest",
        "risk-adjusted",
        "variance",
        "correlation",
        "projection",
        "draft a",
        "write a report",
        "summari",
        "design",
        "build a",
        "build an",
        "schedule",
        "query",
        "difference",
        "write a",
        "write an",
        "break-even",
        "for and against",
        "show the math",
        "show your",
        "percentile",
    ),
    "code": ("```", "def ", "select ", "function", "import ", "class ", "sql", "python", "regex", "json", "script"),
    "simple": (
        "what is",
        "what are",
        "what's",
        "how do i",
        "how can i",
        "where is",
        "where can",
        "when does",
        "when is",
        "opening hours",
        "open on",
        "reset",
        "password",
        "thank",
        "hello",
        "hi ",
        "could you tell me",
        "can i",
        "is it possible",
        "how much is",
        "how long",
        "lost my",
        "block my",
        "activate",
    ),
}
_ZH = {
    "reasoning": (
        "推导",
        "证明",
        "分析",
        "比较",
        "对比",
        "评估",
        "模拟",
        "计算",
        "测算",
        "估算",
        "优化",
        "论证",
        "为什么",
        "利弊",
        "方案",
        "预测",
        "假设",
        "逐步",
        "权衡",
        "敏感性",
        "蒙特卡洛",
        "回归",
        "资产配置",
        "策略",
        "规划",
        "建模",
        "量化",
        "推演",
        "情景",
        "压力测试",
        "影响",
        "拆解",
        "归因",
        "总结",
        "撰写",
        "起草",
        "报告",
        "风险",
        "建立",
        "模型",
        "盈亏平衡",
        "说明如何",
        "写一段",
        "设计",
        "变化",
    ),
    "code": ("代码", "脚本", "函数", "正则"),
    "simple": (
        "怎么",
        "如何办理",
        "在哪",
        "营业时间",
        "几点",
        "多少钱",
        "是什么",
        "请问",
        "谢谢",
        "你好",
        "能不能",
        "可以吗",
        "挂失",
        "重置",
        "密码",
        "开通",
        "查询",
    ),
}
_EN_KIND = {w: k for k, words in _EN.items() for w in words}
_ZH_KIND = {w: k for k, words in _ZH.items() for w in words}
# Question marks ("?", "？"), "|", tab and the ASCII math signs (textview.MATH_SIGNS: = ^ % + /) are counted on the
# text's views; only the rare non-ASCII math signs go through the word pass (none of them is in a word).
_WIDE_MATH = ("×", "÷", "√", "∑", "∫")
EN_WORDS = tuple(_EN_KIND)
EN_STEMS = tuple(w for w in EN_WORDS if w.isalpha())  # "analy" also finds analysis, analyze, analytical ...
OTHER_WORDS = (*_ZH_KIND, *_WIDE_MATH)
_LEXICON: Lexicon | None = None  # built on first use without precomputed words (the handler passes them)
_STEP_LINE = re.compile(r"(?m)^[ \t]*(?:\d{1,2}[.)、]|[-*•]|第[一二三四五六七八九十]+|step \d)")


@dataclass(frozen=True)
class Model:
    """Logistic weights over :data:`FEATURES`."""

    bias: float
    weights: Mapping[str, float]

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> Model:
        """Read the weights file.

        Raises:
            ValueError: the file lacks a feature weight or has an unknown one.
        """
        data = json.loads(path.read_text(encoding="utf-8"))
        weights = {k: float(v) for k, v in data["weights"].items()}
        if set(weights) != set(FEATURES):
            raise ValueError(f"{path}: weights must name exactly {', '.join(FEATURES)}")
        return cls(float(data["bias"]), weights)


def features(
    texts: Sequence[str],
    lows: Sequence[str] | None = None,
    depth: int = 1,
    words: Sequence[Words] | None = None,
    views: Sequence[TextView] | None = None,
) -> dict[str, float]:
    """Feature values for one request.

    Args:
        texts: the user messages' texts (the last one matters most, earlier ones count at half weight).
        lows: their lower-cased forms, if the caller has them.
        depth: number of user turns in the conversation.
        words: per text, what a lexicon that includes this module's words found (see ``router.lexicon``).
        views: per text, its :class:`~router.textview.TextView` (built here when not given).

    Returns:
        One value per name in :data:`FEATURES`, each already squashed (``log1p``).
    """
    counts = dict.fromkeys(FEATURES, 0.0)
    if views is None:
        views = [TextView.of(t, None if lows is None else lows[i]) for i, t in enumerate(texts)]
    for i, view in enumerate(views):
        weight = 1.0 if i == len(views) - 1 else 0.5
        found = _own_lexicon().words(view) if words is None else words[i]
        seen = {w for w in found.present if w in _EN_KIND}
        wide_math = 0
        for w, _, _ in found.other:
            if w in _ZH_KIND:
                seen.add(w)
            elif w in _WIDE_MATH:
                wide_math += 1
        for w in seen:  # distinct cues: repeating one word is not more reasoning
            counts[_EN_KIND.get(w) or _ZH_KIND[w]] += weight
        marks = view.marks
        counts["asks"] += weight * view.count_questions()
        lines = marks.count(textview.NEWLINE) if textview.NEWLINE in marks else 0  # `in` is a memchr: 10x a count
        if lines:
            counts["asks"] += weight * 0.5 * len(_STEP_LINE.findall(view.text))
            counts["document"] += weight * (lines / 4 + marks.count(textview.PIPE) / 6 + marks.count(textview.TAB) / 4)
        counts["math"] += weight * (marks.count(textview.MATH) + wide_math) / 2
        counts["length"] += weight * len(view.text) / 200
    counts["depth"] = max(0, depth - 1)
    return {k: math.log1p(v) for k, v in counts.items()}


def _own_lexicon() -> Lexicon:
    global _LEXICON
    if _LEXICON is None:
        _LEXICON = Lexicon(EN_WORDS, OTHER_WORDS, stems=EN_STEMS, located=())  # only distinct cues count
    return _LEXICON


def score(feats: Mapping[str, float], model: Model) -> float:
    """The complexity score in [0, 1] (probability that the request needs the cloud model)."""
    z = model.bias + sum(model.weights[k] * feats[k] for k in FEATURES)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
