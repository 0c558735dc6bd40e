"""Turning a growing list of token ids into streamed text: incremental detokenization and stop strings."""

from __future__ import annotations

from typing import Any

# Prompt tokens kept as left context so tokenizers that drop a word's leading space when it starts the decoded
# string (SentencePiece) still produce it; a handful is enough for any merge to settle.
CONTEXT_TOKENS = 5
REPLACEMENT_CHAR = "\ufffd"


class IncrementalDetokenizer:
    """Decodes tokens one at a time and returns only text that is final.

    A multi-byte UTF-8 character split over several byte-level tokens decodes to U+FFFD until its last byte
    arrives; such text is held back, so a streamed chunk never ends in half a character.

    Args:
        tokenizer: a transformers tokenizer.
        prompt_ids: the prompt's token ids (only the last few are used, as context).
    """

    def __init__(self, tokenizer: Any, prompt_ids: list[int]) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = list(prompt_ids[-CONTEXT_TOKENS:])
        self._prefix = 0
        self._read = len(self._ids)

    def _decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))

    def token_text(self, token_id: int) -> str:
        """One token's own text (for log-probabilities), special tokens included."""
        return str(self._tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def push(self, token_id: int) -> str:
        """Add one generated token; return the text that became final (maybe empty)."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        full_text = self._decode(self._ids[self._prefix :])
        if len(full_text) > len(prefix_text) and not full_text.endswith(REPLACEMENT_CHAR):
            self._prefix, self._read = self._read, len(self._ids)
            return full_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Text still held back when generation ends (an incomplete character decodes to U+FFFD)."""
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        full_text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return full_text[len(prefix_text) :]


class StopStringMatcher:
    """Finds stop strings in streamed text without ever emitting a stop string or a piece of one.

    Text that could be the start of a stop string is held until the next piece decides it.

    Args:
        stops: the stop strings (empty strings are ignored).
    """

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add text; return ``(text safe to emit, stopped)``. After a stop, the text after it is dropped."""
        if not self._stops:
            return text, False
        buf = self._held + text
        first = min((i for i in (buf.find(s) for s in self._stops) if i >= 0), default=-1)
        if first >= 0:
            self._held = ""
            return buf[:first], True
        hold = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(buf)), hold, -1):
                if buf.endswith(stop[:n]):
                    hold = n
                    break
        self._held = buf[len(buf) - hold :] if hold else ""
        return buf[: len(buf) - hold], False

    def flush(self) -> str:
        """Held text once generation ends without a stop."""
        held, self._held = self._held, ""
        return held
