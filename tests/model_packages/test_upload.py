"""Upload against moto in server mode: key layout, SSE-KMS, verification, idempotency, interrupts, clear failures."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import yaml

from model_packages import upload as up
from model_packages.manifest import load_manifest
from model_packages.package import build_package
from tests.model_packages.conftest import Moto

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def test_upload_puts_a_verified_kms_encrypted_object(moto: Moto, bucket: str, dist_dir: Path) -> None:
    result = up.upload_package("tiny-gpt2", bucket, dist_dir, endpoint_url=moto.url, progress=False)
    sha = load_manifest(dist_dir / "tiny-gpt2").tarball_sha256
    assert result.key == f"models/tiny-gpt2/{sha}/model.tar.gz"
    assert result.uri == f"s3://{bucket}/{result.key}"
    assert not result.skipped
    head = moto.s3.head_object(Bucket=bucket, Key=result.key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == moto.kms_key_arn
    assert head["Metadata"]["sha256"] == sha
    body = moto.s3.get_object(Bucket=bucket, Key=result.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha


def test_second_upload_is_skipped(moto: Moto, bucket: str, dist_dir: Path) -> None:
    first = up.upload_package("tiny-gpt2", bucket, dist_dir, endpoint_url=moto.url, progress=False)
    modified = moto.s3.head_object(Bucket=bucket, Key=first.key)["LastModified"]
    second = up.upload_package("tiny-gpt2", bucket, dist_dir, endpoint_url=moto.url, progress=False)
    assert second.skipped
    assert second.key == first.key
    assert moto.s3.head_object(Bucket=bucket, Key=first.key)["LastModified"] == modified


def test_multipart_with_several_parts(moto: Moto, bucket: str, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 2**20))
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    result = up.upload_file(moto.s3, big, bucket, "models/big/x/model.tar.gz", sha, moto.kms_key_arn, 5 * 2**20, False)
    head = moto.s3.head_object(Bucket=bucket, Key=result.key)
    assert head["ContentLength"] == 11 * 2**20
    assert head["ETag"].endswith('-3"')  # three parts


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ConnectionError])
def test_interrupted_upload_leaves_nothing(moto: Moto, bucket: str, tmp_path: Path, exc: type[BaseException]) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 2**20))
    sha = hashlib.sha256(big.read_bytes()).hexdigest()

    def die_after_first_part(number: int) -> None:
        if number == 1:
            raise exc("connection lost")

    key = "models/big/y/model.tar.gz"
    with pytest.raises(up.UploadError, match="aborted"):
        up.upload_file(moto.s3, big, bucket, key, sha, moto.kms_key_arn, 5 * 2**20, False, on_part=die_after_first_part)
    assert not moto.s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert moto.s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_missing_bucket_is_a_clear_error(moto: Moto, dist_dir: Path) -> None:
    with pytest.raises(up.UploadError, match="bucket 'no-such-bucket' does not exist"):
        up.upload_package("tiny-gpt2", "no-such-bucket", dist_dir, endpoint_url=moto.url, progress=False)


def test_bucket_without_kms_needs_a_key(moto: Moto, dist_dir: Path) -> None:
    moto.s3.create_bucket(Bucket="plain-bucket")
    moto.s3.delete_bucket_encryption(Bucket="plain-bucket")
    with pytest.raises(up.UploadError, match="kms-key-id"):
        up.upload_package("tiny-gpt2", "plain-bucket", dist_dir, endpoint_url=moto.url, progress=False)
    # With an explicit key it works, and the object is still SSE-KMS.
    result = up.upload_package(
        "tiny-gpt2", "plain-bucket", dist_dir, kms_key_id=moto.kms_key_arn, endpoint_url=moto.url, progress=False
    )
    assert moto.s3.head_object(Bucket="plain-bucket", Key=result.key)["ServerSideEncryption"] == "aws:kms"


def test_no_credentials_is_a_clear_error(
    moto: Moto, bucket: str, dist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(up.UploadError, match="no AWS credentials"):
        up.upload_package("tiny-gpt2", bucket, dist_dir, endpoint_url=moto.url, progress=False)


def test_tampered_package_is_not_uploaded(moto: Moto, bucket: str, dist_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(dist_dir / "tiny-gpt2", tmp_path / "tiny-gpt2")
    with (tmp_path / "tiny-gpt2" / "model.tar.gz").open("r+b") as f:
        f.seek(100)
        f.write(b"\x00tampered")  # four-plus changed bytes inside the gzip stream: the sha256 must no longer match
    with pytest.raises(up.UploadError, match="sha256"):
        up.upload_package("tiny-gpt2", bucket, tmp_path, endpoint_url=moto.url, progress=False)
    assert moto.s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    with pytest.raises(up.UploadError, match="no manifest"):
        up.upload_package("not-built", bucket, tmp_path, endpoint_url=moto.url, progress=False)


def test_key_is_written_into_the_environment_config(
    moto: Moto, bucket: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    shutil.copy(CONFIG_DIR / "dev.yaml", config_dir / "dev.yaml")
    name = yaml.safe_load((config_dir / "dev.yaml").read_text())["model"]["name"]
    build_package(str(tiny_model_dir), name, tmp_path / "dist", progress=False)
    result = up.upload_package(name, bucket, tmp_path / "dist", endpoint_url=moto.url, progress=False)
    path = up.record_in_config("dev", name, result.key, config_dir)
    assert yaml.safe_load(path.read_text())["model"]["artifact_key"] == result.key
    assert result.key.startswith(f"models/{name}/")  # the only prefix the endpoint role may read
    with pytest.raises(up.UploadError, match="model.name"):
        up.record_in_config("dev", "other-name", result.key, config_dir)


def test_cli(moto: Moto, bucket: str, dist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--name", "tiny-gpt2", "--bucket", bucket, "--dist-dir", str(dist_dir), "--endpoint-url", moto.url]
    assert up.main([*argv, "--no-progress"]) == 0
    assert "uploaded and verified: s3://" in capsys.readouterr().out
    assert up.main([*argv, "--no-progress"]) == 0
    assert "already uploaded" in capsys.readouterr().out
    assert up.main([*argv, "--part-size-mib", "1"]) == 2
    assert (
        up.main(
            [
                "--name",
                "tiny-gpt2",
                "--bucket",
                "absent-bucket",
                "--dist-dir",
                str(dist_dir),
                "--endpoint-url",
                moto.url,
            ]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err


def _env_config(tmp_path: Path, isolation: bool) -> tuple[Path, str]:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    data = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    data["endpoint"]["vpc"] = {"network_isolation": isolation}
    (config_dir / "dev.yaml").write_text(yaml.safe_dump(data))
    return config_dir, data["model"]["name"]


def test_cli_refuses_a_package_an_isolated_endpoint_could_not_start(
    moto: Moto, bucket: str, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir, name = _env_config(tmp_path, isolation=True)
    build_package(str(tiny_model_dir), name, tmp_path / "dist", progress=False)
    argv = ["--name", name, "--bucket", bucket, "--dist-dir", str(tmp_path / "dist"), "--endpoint-url", moto.url]
    argv += ["--env", "dev", "--config-dir", str(config_dir), "--no-progress"]
    assert up.main(argv) == 1
    err = capsys.readouterr().err
    assert "endpoint.vpc.network_isolation is true" in err
    assert "WHEELS=" in err
    assert moto.s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # refused before any byte was sent
    assert "artifact_key" not in (config_dir / "dev.yaml").read_text()


def test_cli_uploads_and_records_when_the_package_can_start(
    moto: Moto, bucket: str, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "transformers-5.17.0-py3-none-any.whl").write_bytes(b"wheel bytes")
    config_dir, name = _env_config(tmp_path, isolation=True)
    build_package(str(tiny_model_dir), name, tmp_path / "dist", progress=False, wheels_dir=wheels)
    argv = ["--name", name, "--bucket", bucket, "--dist-dir", str(tmp_path / "dist"), "--endpoint-url", moto.url]
    assert up.main([*argv, "--env", "dev", "--config-dir", str(config_dir), "--no-progress"]) == 0
    key = yaml.safe_load((config_dir / "dev.yaml").read_text())["model"]["artifact_key"]
    assert key.startswith(f"models/{name}/")
    assert f"model.artifact_key = {key}" in capsys.readouterr().out
