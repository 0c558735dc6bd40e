"""Step cache: each step's outputs live in ``<cache_dir>/<step>-<hash>/``, keyed by a hash of everything it reads.

A step directory is built under a temporary name and renamed into place only when complete (a ``.done`` file inside
holds the full key), so an interrupted run never leaves a half-written step that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

#: Bump when a step's code changes what it produces, so old cache entries stop matching.
CACHE_VERSION = 4


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex).

    Args:
        path: file to hash.

    Returns:
        The hex digest.
    """
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def step_key(name: str, inputs: dict[str, Any]) -> str:
    """Hash of a step's name, the cache version and its inputs (config values, upstream keys, file digests)."""
    blob = json.dumps({"step": name, "v": CACHE_VERSION, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_step(
    cache_dir: Path,
    name: str,
    inputs: dict[str, Any],
    build: Callable[[Path], None],
    console: Console | None = None,
    use_cache: bool = True,
) -> tuple[Path, str]:
    """Return the directory holding the step's outputs, building it with ``build(tmp_dir)`` on a cache miss.

    Args:
        cache_dir: root of the cache.
        name: step name (part of the directory name).
        inputs: everything the outputs depend on; JSON-serialisable.
        build: writes the step's outputs into the directory it is given.
        console: where to say "cached" or "building".
        use_cache: False rebuilds even when a matching entry exists.

    Returns:
        ``(directory, key)``; pass the key on as an input of downstream steps.
    """
    key = step_key(name, inputs)
    final = cache_dir / f"{name}-{key[:16]}"
    if use_cache and (final / ".done").is_file() and (final / ".done").read_text() == key:
        if console:
            console.print(f"[dim]{name}: cached ({final})[/dim]")
        return final, key
    if console:
        console.print(f"[bold]{name}[/bold]: building")
    tmp = cache_dir / f".{name}-{key[:16]}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        (tmp / ".done").write_text(key)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, key
