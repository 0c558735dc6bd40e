"""Upload a built package to ``s3://BUCKET/models/<name>/<sha256>/model.tar.gz``, verified, never half-written.

    python -m model_packages.upload --name NAME --bucket BUCKET [--env dev] [--kms-key-id KEY] [--endpoint-url URL]

- The package is verified against its manifest first; the key contains the tarball's sha256, so a key is never
  overwritten with different bytes and re-running is idempotent (the same object already there -> skip).
- Multipart with a SHA-256 checksum on every part, SSE-KMS with the bucket's own key (read from its default
  encryption, or ``--kms-key-id``); the tarball's sha256 goes into the object metadata.
- After completing: HEAD with checksum mode checks size, sha256 metadata, encryption and the composite checksum.
- Any failure or Ctrl-C aborts the multipart upload (and deletes an object that fails verification), so no partial or
  corrupt artifact remains. ``--env`` then writes the key into ``config/<env>.yaml`` (``model.artifact_key``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from model_packages.manifest import TARBALL_NAME, ManifestError, load_manifest, verify_package
from model_packages.package import DIST_DIR, NAME_RE

PART_SIZE = 64 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000
UPLOAD_THREADS = 4
SHA_METADATA = "sha256"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class UploadError(Exception):
    """The upload failed or could not start; the message says why and what to do. Nothing partial remains."""


@dataclass(frozen=True)
class UploadResult:
    bucket: str
    key: str
    sha256: str
    size: int
    skipped: bool

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def artifact_key(name: str, sha256: str) -> str:
    """The content-addressed key under the prefix the endpoint role may read (``models/<name>/``)."""
    return f"models/{name}/{sha256}/{TARBALL_NAME}"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _explain(err: Exception, bucket: str, key: str) -> str:
    """Turn a boto/botocore error into one readable line."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, PartialCredentialsError

    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and retry"
    if isinstance(err, EndpointConnectionError):
        return f"cannot reach S3: {err}"
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        msg = err.response.get("Error", {}).get("Message", "")
        if code in {"NoSuchBucket", "404"} and "Bucket" in (msg + code + "NoSuchBucket"):
            return f"bucket {bucket!r} does not exist (or is in another account/region): create it with `make deploy`"
        if code in {"AccessDenied", "403", "AllAccessDisabled", "KMS.AccessDeniedException"}:
            return (
                f"access denied on s3://{bucket}/{key}: the caller needs s3:PutObject, s3:GetObject, "
                f"s3:AbortMultipartUpload on models/* and kms:GenerateDataKey/kms:Decrypt on the bucket's key ({msg})"
            )
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}:
            return f"AWS credentials rejected ({code}): refresh them (aws sso login / new keys) and retry"
        return f"S3 error {code}: {msg}"
    return f"{type(err).__name__}: {err}"


def bucket_kms_key(s3: Any, bucket: str) -> str:
    """The KMS key of the bucket's default SSE-KMS encryption.

    Raises:
        UploadError: the bucket has no SSE-KMS default (pass --kms-key-id), or cannot be read.
    """
    from botocore.exceptions import ClientError

    try:
        enc = s3.get_bucket_encryption(Bucket=bucket)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code == "ServerSideEncryptionConfigurationNotFoundError":
            raise UploadError(f"bucket {bucket!r} has no default encryption; pass --kms-key-id") from None
        raise UploadError(_explain(err, bucket, "")) from None
    for rule in enc.get("ServerSideEncryptionConfiguration", {}).get("Rules", []):
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") in {"aws:kms", "aws:kms:dsse"} and default.get("KMSMasterKeyID"):
            return str(default["KMSMasterKeyID"])
    raise UploadError(
        f"bucket {bucket!r} is not encrypted with a customer-managed KMS key by default; pass --kms-key-id"
    )


def _existing(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return dict(s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise


def _part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    part_size = max(part_size, MIN_PART_SIZE, -(-size // MAX_PARTS))
    ranges = [(off, min(part_size, size - off)) for off in range(0, size, part_size)]
    return ranges or [(0, 0)]


def _verify(s3: Any, bucket: str, key: str, sha256: str, size: int, composite: str | None) -> None:
    head = _existing(s3, bucket, key)
    if head is None:
        raise UploadError(f"s3://{bucket}/{key}: not found right after upload")
    problems = []
    if head.get("ContentLength") != size:
        problems.append(f"size {head.get('ContentLength')} != {size}")
    if head.get("Metadata", {}).get(SHA_METADATA) != sha256:
        problems.append(f"metadata sha256 {head.get('Metadata', {}).get(SHA_METADATA)!r} != {sha256}")
    if head.get("ServerSideEncryption") not in {"aws:kms", "aws:kms:dsse"}:
        problems.append(f"encryption {head.get('ServerSideEncryption')!r} is not aws:kms")
    got = head.get("ChecksumSHA256")
    # S3 reports a multipart object's checksum as base64(sha256(part digests))-N; compare when it is returned.
    if composite is not None and got is not None and got.split("-")[0] != composite:
        problems.append(f"composite ChecksumSHA256 {got} != {composite}")
    if problems:
        raise UploadError(f"s3://{bucket}/{key} failed verification: " + "; ".join(problems))


def upload_file(
    s3: Any,
    path: Path,
    bucket: str,
    key: str,
    sha256: str,
    kms_key_id: str,
    part_size: int = PART_SIZE,
    progress: bool = True,
    on_part: Callable[[int], None] | None = None,
) -> UploadResult:
    """Upload ``path`` to ``bucket/key`` (multipart, SHA-256 checksums, SSE-KMS) and verify it; skip if present.

    Args:
        s3: a boto3 S3 client.
        sha256: the file's hex sha256 (from the verified manifest); stored as object metadata.
        on_part: called with each finished part number (progress hooks; tests use it to interrupt an upload).
    Raises:
        UploadError: with a readable reason; the multipart upload is aborted and no object is left behind.
    """
    size = path.stat().st_size
    try:
        head = _existing(s3, bucket, key)
    except Exception as err:
        raise UploadError(_explain(err, bucket, key)) from None
    # A content-addressed key holding other bytes is a broken upload by another tool: it is replaced below.
    if head is not None and head.get("Metadata", {}).get(SHA_METADATA) == sha256 and head.get("ContentLength") == size:
        return UploadResult(bucket, key, sha256, size, skipped=True)
    ranges = _part_ranges(size, part_size)
    try:
        mpu = s3.create_multipart_upload(
            Bucket=bucket,
            Key=key,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=kms_key_id,
            ChecksumAlgorithm="SHA256",
            ContentType="application/gzip",
            Metadata={SHA_METADATA: sha256},
        )
    except Exception as err:
        raise UploadError(_explain(err, bucket, key)) from None
    upload_id = mpu["UploadId"]
    lock = threading.Lock()

    def send(number: int, offset: int, length: int, bar: tqdm[Any]) -> dict[str, Any]:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(length)
        digest = hashlib.sha256(data).digest()
        resp = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=_b64(digest),
        )
        with lock:
            bar.update(length)
        if on_part is not None:
            on_part(number)
        return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": _b64(digest), "_digest": digest}

    try:
        with tqdm(total=size, unit="B", unit_scale=True, desc="upload", disable=not progress, file=sys.stderr) as bar:
            pool = ThreadPoolExecutor(max_workers=UPLOAD_THREADS)
            try:
                futures = [pool.submit(send, i + 1, off, ln, bar) for i, (off, ln) in enumerate(ranges)]
                parts = [f.result() for f in futures]
            finally:  # on failure, parts not yet started are dropped instead of uploaded and then aborted
                pool.shutdown(wait=True, cancel_futures=True)
        composite = _b64(hashlib.sha256(b"".join(p.pop("_digest") for p in parts)).digest())
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException as err:  # Ctrl-C included: never leave an incomplete upload (it is billed and invisible)
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as abort_err:
            print(f"warning: could not abort multipart upload {upload_id}: {abort_err}", file=sys.stderr)
        if isinstance(err, KeyboardInterrupt):
            raise UploadError(f"upload of s3://{bucket}/{key} interrupted; the partial upload was aborted") from None
        if isinstance(err, Exception):
            raise UploadError(_explain(err, bucket, key) + "; the partial upload was aborted") from None
        raise
    try:
        _verify(s3, bucket, key, sha256, size, composite)
    except BaseException:
        s3.delete_object(Bucket=bucket, Key=key)  # a corrupt artifact must not be deployable
        raise
    return UploadResult(bucket, key, sha256, size, skipped=False)


def _env_config(env: str, name: str, config_dir: Path) -> tuple[Path, Any]:
    """Load ``config/<env>.yaml`` and check its ``model.name`` is the package's (the role reads only that prefix)."""
    from config.errors import ConfigError
    from config.loader import config_path, load_config_file

    try:
        path = config_path(env, config_dir)
        cfg = load_config_file(path)
    except ConfigError as err:
        raise UploadError(f"--env: {err}") from None
    if cfg.model.name != name:
        raise UploadError(
            f"--env {env}: model.name in {path} is {cfg.model.name!r} but the package is {name!r}; the endpoint role "
            f"may read only models/{cfg.model.name}/ (package with NAME={cfg.model.name} or change model.name)"
        )
    return path, cfg


def check_env_before_upload(env: str, name: str, dist_dir: Path = DIST_DIR, config_dir: Path = CONFIG_DIR) -> None:
    """Refuse, before any byte is sent, a package the environment's endpoint could not start.

    Raises:
        UploadError: the config is invalid, its model.name differs from the package name (the endpoint role could
            not read the key), or the endpoint runs with network isolation and the package has no packed wheels
            (the container's ``pip install -r code/requirements.txt`` would fail at start-up).
    """
    path, cfg = _env_config(env, name, config_dir)
    try:
        manifest = load_manifest(dist_dir / name)
    except ManifestError as err:
        raise UploadError(f"package {name!r}: {err}") from None
    has_wheels = any(m.path.startswith("code/wheels/") for m in manifest.members)
    if cfg.endpoint.vpc.network_isolation and not has_wheels:
        raise UploadError(
            f"--env {env}: endpoint.vpc.network_isolation is true in {path}, so the container cannot "
            f"pip-install code/requirements.txt, and package {name!r} has no packed wheels; rebuild it with "
            "`make package MODEL=... NAME=... WHEELS=<dir>` (docs/PACKAGING.md) or set "
            "endpoint.vpc.network_isolation: false"
        )


def record_in_config(env: str, name: str, key: str, config_dir: Path = CONFIG_DIR) -> Path:
    """Write ``model.artifact_key`` into ``config/<env>.yaml`` (atomic, re-validated).

    Raises:
        UploadError: the environment's model.name differs from the package name (the endpoint role could not read it).
    """
    from config.errors import ConfigError
    from config.loader import update_config_value

    path, _ = _env_config(env, name, config_dir)
    try:
        update_config_value(path, "model.artifact_key", key)
    except ConfigError as err:
        raise UploadError(f"--env: {err}") from None
    return path


def upload_package(
    name: str,
    bucket: str,
    dist_dir: Path = DIST_DIR,
    kms_key_id: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    part_size: int = PART_SIZE,
    progress: bool = True,
) -> UploadResult:
    """Verify ``<dist_dir>/<name>`` and upload its tarball to the content-addressed key.

    Raises:
        UploadError: bad name, package not built or not matching its manifest, or any AWS failure (readable).
    """
    if not NAME_RE.match(name):
        raise UploadError(f"NAME: {name!r} must be 1-32 lowercase letters, digits or '-'")
    try:
        manifest = verify_package(dist_dir / name)
    except ManifestError as err:
        raise UploadError(f"package {name!r}: {err}") from None
    import boto3

    # A fresh session reads credentials now (boto3's default session caches the first ones it found).
    s3 = boto3.session.Session(region_name=region).client("s3", endpoint_url=endpoint_url)
    key = artifact_key(name, manifest.tarball_sha256)
    if kms_key_id is None:
        try:
            kms_key_id = bucket_kms_key(s3, bucket)
        except UploadError:
            raise
        except Exception as err:
            raise UploadError(_explain(err, bucket, key)) from None
    return upload_file(
        s3, dist_dir / name / TARBALL_NAME, bucket, key, manifest.tarball_sha256, kms_key_id, part_size, progress
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Upload model_packages/dist/<name>/model.tar.gz to the artifact bucket.")
    ap.add_argument("--name", required=True, help="package name (model_packages/dist/<name>)")
    ap.add_argument("--bucket", required=True, help="artifact bucket (SSE-KMS encrypted)")
    ap.add_argument("--env", help="also write model.artifact_key into config/<env>.yaml")
    ap.add_argument("--kms-key-id", help="KMS key id/ARN (default: the bucket's default encryption key)")
    ap.add_argument("--dist-dir", type=Path, default=DIST_DIR)
    ap.add_argument("--endpoint-url", help="S3 endpoint override (tests, VPC endpoints)")
    ap.add_argument("--region", help="AWS region (default: from the environment/profile)")
    ap.add_argument("--part-size-mib", type=int, default=PART_SIZE // 2**20, help="multipart part size (>= 5)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--config-dir", type=Path, default=CONFIG_DIR, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part_size_mib < 5:
        print("error: --part-size-mib: must be >= 5 (S3's minimum part size)", file=sys.stderr)
        return 2
    try:
        if args.env:
            check_env_before_upload(args.env, args.name, args.dist_dir, args.config_dir)
        result = upload_package(
            args.name,
            args.bucket,
            args.dist_dir,
            args.kms_key_id,
            args.endpoint_url,
            args.region,
            args.part_size_mib * 2**20,
            not args.no_progress,
        )
        if args.env:
            path = record_in_config(args.env, args.name, result.key, args.config_dir)
    except UploadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(("already uploaded (same sha256): " if result.skipped else "uploaded and verified: ") + result.uri)
    if args.env:
        print(f"model.artifact_key = {result.key} written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
