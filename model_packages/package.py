"""Build a reproducible SageMaker ``model.tar.gz`` from a model directory (or hub id) plus ``manifest.json``.

    python -m model_packages.package MODEL --name NAME [--out-dir model_packages/dist]

Layout: the model files at the root of the archive, ``code/inference.py`` and ``code/requirements.txt`` beside them
(what the PyTorch inference container expects), and the generation core and the OpenAI wire module the handler runs
on vendored as ``code/local/embedded/`` and ``code/wire/`` (byte-identical copies; see :func:`vendored_files`). Rebuilding the same inputs gives a byte-identical tarball: members
sorted, mtime 0, owner root:root, modes 0644/0755, gzip header without name or timestamp. Files are streamed (never
read whole into memory), hashed while they are written, and both outputs are replaced atomically.
``MODEL=tiny`` builds the offline smoke-test model first.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from config.atomic import atomic_write
from model_packages.manifest import TARBALL_NAME, Manifest, Member, write_manifest

REPO_ROOT = Path(__file__).resolve().parent.parent
HANDLER = REPO_ROOT / "inference" / "inference.py"
HANDLER_REQUIREMENTS = REPO_ROOT / "inference" / "requirements.txt"
# Packages of this repo the handler imports, vendored under code/ (the container puts code/ on sys.path): the
# generation core and the OpenAI wire module. Each package's parent __init__.py files come along so the import paths match the repo's.
VENDORED_PACKAGES = ("local/embedded", "wire")
DIST_DIR = REPO_ROOT / "model_packages" / "dist"
CONTAINER_WHEELS_DIR = "/opt/ml/model/code/wheels"  # where SageMaker unpacks code/ (pip resolves paths from its cwd)
CACHE_DIR = REPO_ROOT / "model_packages" / ".cache"
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")  # same rule as config model.name (S3 prefix, resources)
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tokenizer_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SKIP_DIRS = {".git", ".cache", "__pycache__", "code"}  # `code` comes from this repo, never from the model dir
GZIP_LEVEL = 6
CHUNK = 4 * 1024 * 1024


class PackageError(Exception):
    """The model source cannot be packaged; the message says what is missing and what is expected."""


@dataclass(frozen=True)
class Source:
    """Where one archive member comes from: a file on disk, or bytes generated here (``data``)."""

    arcname: str
    path: Path | None
    mode: int
    data: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size if self.path else 0

    def open(self) -> IO[bytes]:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")


def check_model_dir(model_dir: Path) -> None:
    """Refuse a directory that lacks a config, a tokenizer or weights.

    Raises:
        PackageError: names each missing part and the files that would satisfy it.
    """
    if not model_dir.is_dir():
        raise PackageError(f"MODEL: {model_dir} is not a directory")
    names = {p.name for p in model_dir.iterdir() if p.is_file()}
    problems = []
    if "config.json" not in names:
        problems.append("no config.json (the model config)")
    if not any(t in names for t in TOKENIZER_FILES):
        problems.append(f"no tokenizer (one of {', '.join(TOKENIZER_FILES)})")
    if not any(n.endswith(WEIGHT_SUFFIXES) for n in names):
        problems.append(f"no weights (*{', *'.join(WEIGHT_SUFFIXES)})")
    if problems:
        raise PackageError(f"MODEL: {model_dir} is not a complete model directory: " + "; ".join(problems))


def resolve_model(model: str) -> tuple[Path, dict[str, Any]]:
    """Turn MODEL (a directory, ``tiny``, or a hub id) into a local directory and a manifest ``source`` record.

    Raises:
        PackageError: not a directory and not downloadable (this machine may have no hub access).
    """
    path = Path(model)
    if path.is_dir():
        return path, {"kind": "directory", "path": str(path)}
    if model == "tiny":
        from model_packages.tiny_model import TINY_MODEL_NAME, build_tiny_model

        return build_tiny_model(CACHE_DIR / "tiny-gpt2"), {"kind": "tiny", "name": TINY_MODEL_NAME}
    if HUB_ID_RE.match(model):
        try:
            from huggingface_hub import snapshot_download

            local = snapshot_download(repo_id=model, cache_dir=str(CACHE_DIR / "hub"))
        except Exception as err:
            raise PackageError(
                f"MODEL: {model!r} is not a local directory and downloading it from the hub failed "
                f"({type(err).__name__}: {err}); download it elsewhere and pass the directory"
            ) from None
        return Path(local), {"kind": "hub", "hub_id": model}
    raise PackageError(f"MODEL: {model!r} is neither a directory, 'tiny', nor a hub id like org/name")


def offline_requirements(requirements: Path) -> bytes:
    """requirements.txt that makes the container's ``pip install -r`` use only the packed wheels (no network)."""
    head = f"# pip reads these options from the file: install only from the wheels packed in code/wheels.\n--no-index\n--find-links {CONTAINER_WHEELS_DIR}\n"
    return (head + requirements.read_text(encoding="utf-8")).encode("utf-8")


def wheel_sources(wheels_dir: Path) -> list[Source]:
    """Every ``*.whl`` in ``wheels_dir`` as ``code/wheels/<name>``.

    Raises:
        PackageError: the directory is missing or holds no wheels.
    """
    wheels = sorted(wheels_dir.glob("*.whl")) if wheels_dir.is_dir() else []
    if not wheels:
        raise PackageError(
            f"--wheels: no *.whl files in {wheels_dir}; fill it with `pip download -r inference/requirements.txt "
            f"-d {wheels_dir} --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.12`"
        )
    return [Source(f"code/wheels/{w.name}", w, 0o644) for w in wheels]


def collect_sources(
    model_dir: Path,
    handler: Path = HANDLER,
    requirements: Path = HANDLER_REQUIREMENTS,
    wheels_dir: Path | None = None,
) -> list[Source]:
    """Every file to pack, sorted by archive name: model files at the root, handler under ``code/``."""
    sources = []
    for root, dirs, files in os.walk(model_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            p = Path(root) / name
            # Hub caches hold symlinks into a blobs folder: pack the content they point to, as a plain file.
            sources.append(Source(p.relative_to(model_dir).as_posix(), p, 0o644))
    sources.append(Source("code/inference.py", handler, 0o644))
    sources += [Source(arcname, path, 0o644) for arcname, path in vendored_files().items()]
    if wheels_dir is None:
        sources.append(Source("code/requirements.txt", requirements, 0o644))
    else:
        sources += wheel_sources(wheels_dir)
        sources.append(Source("code/requirements.txt", None, 0o644, offline_requirements(requirements)))
    return sorted(sources, key=lambda s: s.arcname)


def vendored_files(root: Path = REPO_ROOT) -> dict[str, Path]:
    """``code/<path>`` -> source file for every module of :data:`VENDORED_PACKAGES` and their parents' ``__init__``.

    Raises:
        PackageError: a vendored package is missing from the repository.
    """
    files: dict[str, Path] = {}
    for package in VENDORED_PACKAGES:
        directory = root / package
        if not (directory / "__init__.py").is_file():
            raise PackageError(f"vendored package {package!r} is missing from {root}")
        parts = package.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            files[f"code/{parent}/__init__.py"] = root / parent / "__init__.py"
        for path in sorted(directory.glob("*.py")):
            files[f"code/{package}/{path.name}"] = path
    return files


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class _HashingReader:
    """A read-only file object that hashes what is read and advances a progress bar."""

    def __init__(self, raw: IO[bytes], bar: tqdm[Any]) -> None:
        self.raw = raw
        self.bar = bar
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.bar.update(len(data))
        return data


def _dir_infos(arcnames: list[str]) -> Iterator[tarfile.TarInfo]:
    dirs = sorted({str(Path(a).parent) for a in arcnames if "/" in a} | {"code"})
    expanded: set[str] = set()
    for d in dirs:
        parts = d.split("/")
        expanded.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    for d in sorted(expanded):
        info = tarfile.TarInfo(d)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        yield _normalize(info)


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_package(
    model: str, name: str, out_dir: Path = DIST_DIR, progress: bool = True, wheels_dir: Path | None = None
) -> tuple[Path, Manifest]:
    """Build ``<out_dir>/<name>/model.tar.gz`` and ``manifest.json``.

    Args:
        model: a model directory, ``tiny``, or a hub id.
        name: package name (lowercase letters, digits, '-'; it becomes the S3 prefix ``models/<name>/``).
        out_dir: parent of the package directory.
        progress: show a byte progress bar on stderr.
        wheels_dir: pack these wheels under ``code/wheels`` and make requirements.txt install only from them, for
            endpoints with network isolation (the container runs ``pip install -r code/requirements.txt``).
    Returns:
        The tarball path and its manifest.
    Raises:
        PackageError: bad name, incomplete model directory, or a source that cannot be fetched.
    """
    if not NAME_RE.match(name):
        raise PackageError(
            f"NAME: {name!r} must be 1-32 lowercase letters, digits or '-' (it names models/<name>/ in S3)"
        )
    model_dir, source = resolve_model(model)
    check_model_dir(model_dir)
    sources = collect_sources(model_dir, wheels_dir=wheels_dir)
    total = sum(s.size for s in sources)
    target_dir = out_dir / name
    target_dir.mkdir(parents=True, exist_ok=True)
    tarball = target_dir / TARBALL_NAME
    members: list[Member] = []
    with (
        atomic_write(tarball, "wb") as raw,
        tqdm(
            total=total, unit="B", unit_scale=True, desc=f"package {name}", disable=not progress, file=sys.stderr
        ) as bar,
    ):
        out = _HashingWriter(raw)
        # filename="" and mtime=0 keep the gzip header free of anything that changes between builds.
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=GZIP_LEVEL) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for info in _dir_infos([s.arcname for s in sources]):
                tar.addfile(info)
            for src in sources:
                info = _normalize(tarfile.TarInfo(src.arcname))
                info.size = src.size
                info.mode = src.mode
                with src.open() as f:
                    reader = _HashingReader(f, bar)
                    tar.addfile(info, reader)
                members.append(Member(src.arcname, info.size, reader.sha.hexdigest()))
    manifest = Manifest(
        name=name,
        source=source,
        tarball_sha256=out.sha.hexdigest(),
        tarball_size=out.size,
        members=tuple(members),
    )
    write_manifest(manifest, target_dir)
    return tarball, manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build a reproducible SageMaker model.tar.gz plus manifest.json.")
    ap.add_argument("model", help="model directory, 'tiny' (offline smoke-test model), or a hub id org/name")
    ap.add_argument("--name", required=True, help="package name, e.g. gpt2-large (becomes models/<name>/ in S3)")
    ap.add_argument("--out-dir", type=Path, default=DIST_DIR, help="default: model_packages/dist")
    ap.add_argument("--wheels", type=Path, help="pack these wheels and install only from them (network isolation)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        tarball, manifest = build_package(
            args.model, args.name, args.out_dir, progress=not args.no_progress, wheels_dir=args.wheels
        )
    except PackageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"built {tarball} ({manifest.tarball_size:,} bytes, {len(manifest.members)} files)")
    print(f"sha256 {manifest.tarball_sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
