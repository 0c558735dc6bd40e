"""Packaging: layout, byte-identical rebuilds, manifest verification, and refusal of incomplete model directories."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from model_packages import package as pkg
from model_packages.manifest import ManifestError, load_manifest, verify_package


def test_layout_weights_at_root_and_handler_under_code(dist_dir: Path) -> None:
    with tarfile.open(dist_dir / "tiny-gpt2" / "model.tar.gz") as tar:
        names = tar.getnames()
        infos = {i.name: i for i in tar.getmembers()}
        handler = tar.extractfile("code/inference.py")
        assert handler is not None
        assert handler.read() == pkg.HANDLER.read_bytes()
    for required in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "code/inference.py",
        "code/requirements.txt",
    ):
        assert required in names
    files = [n for n in names if infos[n].isfile()]
    assert files == sorted(files)
    assert all(i.mtime == 0 and i.uid == 0 and i.gid == 0 for i in infos.values())


def test_the_generation_core_and_wire_are_vendored_identical_to_the_source(dist_dir: Path) -> None:
    """code/local/embedded/ and code/wire/ in the tarball are byte for byte this repo's (every module, nothing else)."""
    expected = {}
    for package in ("local/embedded", "wire"):
        for path in (pkg.REPO_ROOT / package).glob("*.py"):
            expected[f"code/{package}/{path.name}"] = path.read_bytes()
    expected["code/local/__init__.py"] = (pkg.REPO_ROOT / "local" / "__init__.py").read_bytes()
    assert {"code/local/embedded/engine.py", "code/local/embedded/limits.py", "code/wire/validate.py"} <= set(expected)
    with tarfile.open(dist_dir / "tiny-gpt2" / "model.tar.gz") as tar:
        vendored = {}
        for info in tar.getmembers():
            if info.isfile() and info.name.startswith(("code/local/", "code/wire/")):
                f = tar.extractfile(info)
                assert f is not None
                vendored[info.name] = f.read()
    assert vendored == expected


def test_the_packaged_handler_imports_only_what_the_package_holds(dist_dir: Path, tmp_path: Path) -> None:
    """Unpacked alone (no repo on sys.path), code/inference.py imports: the core travels with it."""
    import subprocess
    import sys

    with tarfile.open(dist_dir / "tiny-gpt2" / "model.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    probe = "import inference, local.embedded.engine as e, wire; print(inference.__file__, e.__file__, wire.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path / "code", capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    code = str((tmp_path / "code").resolve())
    assert all(line.startswith(code) for line in out), out


def test_rebuild_is_byte_identical(tiny_model_dir: Path, tmp_path: Path, dist_dir: Path) -> None:
    tarball, manifest = pkg.build_package(str(tiny_model_dir), "tiny-gpt2", tmp_path, progress=False)
    first = (dist_dir / "tiny-gpt2" / "model.tar.gz").read_bytes()
    assert tarball.read_bytes() == first
    assert manifest.tarball_sha256 == hashlib.sha256(first).hexdigest()
    # Touching a file changes its mtime but not the archive.
    (tiny_model_dir / "config.json").touch()
    again, _ = pkg.build_package(str(tiny_model_dir), "tiny-gpt2", tmp_path / "again", progress=False)
    assert again.read_bytes() == first


def test_manifest_lists_every_member_with_hashes(dist_dir: Path) -> None:
    m = verify_package(dist_dir / "tiny-gpt2")
    data = json.loads((dist_dir / "tiny-gpt2" / "manifest.json").read_text())
    assert data["tarball_sha256"] == m.tarball_sha256
    by_path = {x.path: x for x in m.members}
    weights = Path(load_manifest(dist_dir / "tiny-gpt2").source["path"]) / "model.safetensors"
    assert by_path["model.safetensors"].sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert by_path["model.safetensors"].size == weights.stat().st_size
    assert m.source["kind"] == "directory"


def _copy_package(dist_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "tiny-gpt2"
    shutil.copytree(dist_dir / "tiny-gpt2", target)
    return target


def test_verify_catches_a_changed_tarball(dist_dir: Path, tmp_path: Path) -> None:
    target = _copy_package(dist_dir, tmp_path)
    with (target / "model.tar.gz").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ManifestError, match="size"):
        verify_package(target)


def test_verify_catches_a_changed_member(dist_dir: Path, tmp_path: Path) -> None:
    target = _copy_package(dist_dir, tmp_path)
    data = json.loads((target / "manifest.json").read_text())
    for member in data["members"]:
        if member["path"] == "config.json":
            member["sha256"] = "0" * 64
    (target / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="'config.json'"):
        verify_package(target)


def test_verify_cli(dist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from model_packages.manifest import main

    assert main(["verify", str(dist_dir / "tiny-gpt2")]) == 0
    assert "ok:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (["config.json"], "no config.json"),
        (["tokenizer.json", "tokenizer_config.json"], "no tokenizer"),
        (["model.safetensors"], "no weights"),
    ],
)
def test_refuses_incomplete_model_dir(tiny_model_dir: Path, tmp_path: Path, remove: list[str], message: str) -> None:
    src = tmp_path / "model"
    shutil.copytree(tiny_model_dir, src)
    for name in remove:
        (src / name).unlink()
    with pytest.raises(pkg.PackageError, match=message):
        pkg.build_package(str(src), "x", tmp_path / "dist", progress=False)
    assert not (tmp_path / "dist" / "x" / "model.tar.gz").exists()


def test_refuses_bad_name_and_unknown_source(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(pkg.PackageError, match="NAME"):
        pkg.build_package(str(tiny_model_dir), "Bad_Name", tmp_path, progress=False)
    with pytest.raises(pkg.PackageError, match="neither a directory"):
        pkg.build_package(str(tmp_path / "nope"), "x", tmp_path, progress=False)


def test_hub_id_without_hub_access_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(pkg, "CACHE_DIR", tmp_path / "cache")
    with pytest.raises(pkg.PackageError, match="hub failed"):
        pkg.build_package("openai-community/gpt2-large", "gpt2-large", tmp_path, progress=False)


def test_symlinked_weights_are_packed_as_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "snapshot"
    src.mkdir()
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for f in tiny_model_dir.iterdir():
        shutil.copy(f, blobs / f.name)
        (src / f.name).symlink_to(blobs / f.name)
    tarball, _ = pkg.build_package(str(src), "linked", tmp_path / "dist", progress=False)
    with tarfile.open(tarball) as tar:
        info = tar.getmember("model.safetensors")
        assert info.isfile()
        assert info.size == (tiny_model_dir / "model.safetensors").stat().st_size


def test_failed_build_leaves_nothing_half_written(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "dist"
    pkg.build_package(str(tiny_model_dir), "t", out, progress=False)
    before = (out / "t" / "model.tar.gz").read_bytes()

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pkg, "_normalize", broken)
    with pytest.raises(OSError, match="disk full"):
        pkg.build_package(str(tiny_model_dir), "t", out, progress=False)
    assert (out / "t" / "model.tar.gz").read_bytes() == before  # the old package is untouched
    assert sorted(p.name for p in (out / "t").iterdir()) == ["manifest.json", "model.tar.gz"]


def test_cli_builds_and_reports(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pkg.main([str(tiny_model_dir), "--name", "cli", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sha256" in out
    assert (tmp_path / "cli" / "manifest.json").is_file()
    assert pkg.main([str(tmp_path / "missing"), "--name", "cli", "--out-dir", str(tmp_path)]) == 2
    assert "MODEL" in capsys.readouterr().err


def test_wheels_make_requirements_offline(tiny_model_dir: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "transformers-5.17.0-py3-none-any.whl").write_bytes(b"wheel bytes")
    (wheels / "notes.txt").write_text("ignored")
    tarball, _ = pkg.build_package(str(tiny_model_dir), "iso", tmp_path / "dist", progress=False, wheels_dir=wheels)
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        req = tar.extractfile("code/requirements.txt")
        assert req is not None
        lines = req.read().decode().splitlines()
    assert "code/wheels/transformers-5.17.0-py3-none-any.whl" in names
    assert "code/wheels/notes.txt" not in names
    assert "--no-index" in lines
    assert f"--find-links {pkg.CONTAINER_WHEELS_DIR}" in lines
    assert pkg.HANDLER_REQUIREMENTS.read_text().splitlines()[-1] in lines
    verify_package(tmp_path / "dist" / "iso")
    with pytest.raises(pkg.PackageError, match="no \\*.whl"):
        pkg.build_package(str(tiny_model_dir), "iso", tmp_path / "dist", progress=False, wheels_dir=tmp_path / "none")
