"""Fixtures: the tiny offline model, built packages, and moto in server mode with a KMS-encrypted bucket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from model_packages.package import build_package
from model_packages.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp() / "tiny-gpt2")


@pytest.fixture(scope="session")
def dist_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build_package(str(tiny_model_dir), "tiny-gpt2", out, progress=False)
    return out


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.delenv("AWS_PROFILE", raising=False)
    yield
    mp.undo()


@dataclass
class Moto:
    url: str
    s3: Any
    kms_key_arn: str


@pytest.fixture(scope="session")
def moto(aws_env: None) -> Iterator[Moto]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    kms = boto3.client("kms", endpoint_url=url)
    key = kms.create_key(Description="artifact bucket key")["KeyMetadata"]["Arn"]
    yield Moto(url, boto3.client("s3", endpoint_url=url), key)
    server.stop()


_counter = iter(range(10_000))


@pytest.fixture
def bucket(moto: Moto) -> str:
    """A fresh bucket with SSE-KMS default encryption (the artifact bucket's shape)."""
    name = f"artifacts-{next(_counter)}"
    moto.s3.create_bucket(Bucket=name)
    moto.s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": moto.kms_key_arn}}
            ]
        },
    )
    return name
