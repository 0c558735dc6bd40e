"""Complexity scoring: is a request worth the cloud model? English and Chinese, not fooled by length alone.

Features are counts of cues (asks, reasoning/analysis/derivation verbs, math, code, pasted documents or tables,
conversation depth, simple-question cues), each squashed with ``log1p`` so a long friendly message does not outweigh a
short "derive ... and prove ..." request. A logistic model (weights in ``complexity_weights.json`` shipped in this
folder) turns them into a score in [0, 1]. Two word passes (English on the text's lower-case ASCII view, Chinese on
the text); ASCII punctuation is counted on the view's marks (``router.textview``), not with a regex.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from router import textview
from router import words as W
from router.lexicon import Lexicon, Words
from router.textview import TextView

WEIGHTS_FILE = Path(__file__).with_name("complexity_weights.json")
FEATURES = ("asks", "reasoning", "math", "code", "document", "depth", "simple", "length")

_EN_KIND = W.COMPLEXITY_EN_KIND
_ZH_KIND = W.COMPLEXITY_ZH_KIND
# Question marks ("?", "？"), "|", tab and the ASCII math signs (textview.MATH_SIGNS: = ^ % + /) are counted on the
# text's views; only the rare non-ASCII math signs go through the word pass (none of them is in a word).
EN_WORDS = W.COMPLEXITY_EN_WORDS
EN_STEMS = W.COMPLEXITY_EN_STEMS
OTHER_WORDS = W.COMPLEXITY_OTHER_WORDS
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
            elif w in W.WIDE_MATH:
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


@functools.cache
def _own_lexicon() -> Lexicon:
    """This module's words alone, for callers that pass no word pass (the handler passes the shared one)."""
    return Lexicon(EN_WORDS, OTHER_WORDS, stems=EN_STEMS, located=())  # only distinct cues count


def score(feats: Mapping[str, float], model: Model) -> float:
    """The complexity score in [0, 1] (probability that the request needs the cloud model)."""
    z = model.bias + sum(model.weights[k] * feats[k] for k in FEATURES)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
