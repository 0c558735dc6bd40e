"""Redaction for ``redact_to_cloud``: replace each detected value with a placeholder, restore it in the answer.

The mapping from placeholder to value lives only in the Lambda's memory for the duration of one request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from router.detect import Finding

_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")


def redact(texts: Sequence[str], findings: Sequence[Sequence[Finding]]) -> tuple[list[str], dict[str, str]]:
    """Replace every finding's span with ``[TYPE_n]``; the same value gets the same placeholder everywhere.

    Args:
        texts: the texts of the request (one per message part).
        findings: the findings of each text, in the same order.

    Returns:
        The redacted texts and the mapping placeholder -> original value.
    """
    by_value: dict[str, str] = {}
    counters: dict[str, int] = {}
    out: list[str] = []
    for text, found in zip(texts, findings, strict=True):
        pieces: list[str] = []
        pos = 0
        for start, end, kind in _merged(found):
            value = text[start:end]
            ph = by_value.get(value)
            if ph is None:
                label = kind.upper().replace(":", "_")
                counters[label] = counters.get(label, 0) + 1
                ph = f"[{label}_{counters[label]}]"
                by_value[value] = ph
            pieces.append(text[pos:start])
            pieces.append(ph)
            pos = end
        pieces.append(text[pos:])
        out.append("".join(pieces))
    return out, {ph: value for value, ph in by_value.items()}


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put the original values back where the answer repeats a placeholder."""
    if not mapping:
        return text
    return _PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)


def _merged(found: Sequence[Finding]) -> list[tuple[int, int, str]]:
    """Spans sorted and fused where they overlap (the first type names the fused span)."""
    spans: list[tuple[int, int, str]] = []
    for f in sorted(found, key=lambda f: (f.start, -f.end)):
        if spans and f.start < spans[-1][1]:
            s, e, k = spans[-1]
            spans[-1] = (s, max(e, f.end), k)
        else:
            spans.append((f.start, f.end, f.type))
    return spans
