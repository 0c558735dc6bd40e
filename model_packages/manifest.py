"""``manifest.json`` next to each ``model.tar.gz``: sha256 and size of the tarball and of every member, and the source.

    python -m model_packages.manifest verify model_packages/dist/<name>

Verification re-reads the tarball and every member, so a truncated, re-packed or tampered artifact is caught
before it is uploaded or served.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from config.atomic import write_text_atomic

MANIFEST_NAME = "manifest.json"
TARBALL_NAME = "model.tar.gz"
MANIFEST_FORMAT = 1
CHUNK = 8 * 1024 * 1024


class ManifestError(Exception):
    """The package does not match its manifest, or the manifest is unreadable; the message says what differs."""


@dataclass(frozen=True)
class Member:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    name: str
    source: dict[str, Any]
    tarball_sha256: str
    tarball_size: int
    members: tuple[Member, ...] = field(default_factory=tuple)
    format: int = MANIFEST_FORMAT
    created_by: str = "llm-deploy model_packages.package"

    def to_json(self) -> str:
        data = asdict(self)
        data["members"] = [asdict(m) for m in self.members]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = MANIFEST_NAME) -> Manifest:
        """Parse a manifest.

        Raises:
            ManifestError: not JSON, unknown format, or a missing/mistyped field (named).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{source}: not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: expected a JSON object")
        if data.get("format") != MANIFEST_FORMAT:
            raise ManifestError(
                f"{source}: format: {data.get('format')!r} is not supported (expected {MANIFEST_FORMAT})"
            )
        try:
            members = tuple(Member(str(m["path"]), int(m["size"]), str(m["sha256"])) for m in data["members"])
            return cls(
                name=str(data["name"]),
                source=dict(data["source"]),
                tarball_sha256=str(data["tarball_sha256"]),
                tarball_size=int(data["tarball_size"]),
                members=members,
                created_by=str(data.get("created_by", "")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(f"{source}: missing or malformed field {err}") from None


def sha256_stream(f: IO[bytes]) -> tuple[str, int]:
    """Hash a binary stream in chunks; returns (hex digest, byte count)."""
    h = hashlib.sha256()
    n = 0
    while chunk := f.read(CHUNK):
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def sha256_file(path: Path) -> tuple[str, int]:
    """Hash a file in chunks; returns (hex digest, size)."""
    with path.open("rb") as f:
        return sha256_stream(f)


def write_manifest(manifest: Manifest, directory: Path) -> Path:
    """Write ``manifest.json`` atomically (temp file + rename) and return its path."""
    target = directory / MANIFEST_NAME
    write_text_atomic(target, manifest.to_json())
    return target


def load_manifest(directory: Path) -> Manifest:
    """Read ``<directory>/manifest.json``.

    Raises:
        ManifestError: missing or malformed.
    """
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest; build the package first (make package MODEL=... NAME=...)")
    return Manifest.from_json(path.read_text(encoding="utf-8"), str(path))


def verify_package(directory: Path) -> Manifest:
    """Check ``model.tar.gz`` in ``directory`` against its manifest: tarball hash/size, then every member.

    Returns:
        The verified manifest.
    Raises:
        ManifestError: names the first thing that differs (tarball hash, a missing/extra member, a member hash).
    """
    manifest = load_manifest(directory)
    tarball = directory / TARBALL_NAME
    if not tarball.is_file():
        raise ManifestError(f"{tarball}: missing")
    digest, size = sha256_file(tarball)
    if size != manifest.tarball_size:
        raise ManifestError(f"{tarball}: size {size} != manifest tarball_size {manifest.tarball_size}")
    if digest != manifest.tarball_sha256:
        raise ManifestError(f"{tarball}: sha256 {digest} != manifest tarball_sha256 {manifest.tarball_sha256}")
    expected = {m.path: m for m in manifest.members}
    seen: set[str] = set()
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                want = expected.get(info.name)
                if want is None:
                    raise ManifestError(f"{tarball}: member {info.name!r} is not in the manifest")
                fobj = tar.extractfile(info)
                if fobj is None:
                    raise ManifestError(f"{tarball}: member {info.name!r} cannot be read")
                got, n = sha256_stream(fobj)
                if n != want.size or got != want.sha256:
                    raise ManifestError(
                        f"{tarball}: member {info.name!r}: sha256 {got} size {n} != manifest {want.sha256} size {want.size}"
                    )
                seen.add(info.name)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ManifestError(f"{tarball}: not a readable tar.gz: {err}") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise ManifestError(f"{tarball}: members listed in the manifest are missing: {', '.join(missing[:5])}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Verify a built model package against its manifest.json.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="re-hash model.tar.gz and its members")
    v.add_argument("directory", type=Path, help="model_packages/dist/<name>")
    args = ap.parse_args(argv)
    try:
        m = verify_package(args.directory)
    except ManifestError as err:
        print(f"error: {err}")
        return 1
    print(f"ok: {args.directory / TARBALL_NAME} sha256 {m.tarball_sha256} ({len(m.members)} members)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
