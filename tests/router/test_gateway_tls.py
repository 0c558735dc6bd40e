"""The router pins the on-prem gateway's CA and presents a client certificate (issue 17 item 2), over real TLS.

A CA, server certificates for 127.0.0.1 and a client certificate are made with ``cryptography``; the gateway is
:class:`tests.router.conftest.FakeGateway` serving HTTPS on 127.0.0.1; the secrets live in moto's Secrets Manager
(server mode) and are read by the router's real boto3 client.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import stat
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from router import handler
from router.errors import SettingsError, TargetUnavailable
from router.secrets import SecretCache
from router.settings import ENV_VARS, TLS_SECRET_VARS, Settings
from router.targets import LocalTarget
from router.tls import CA_WHAT, CLIENT_CERT_WHAT, GatewayTLS, build_context
from tests.router.conftest import REGION, FakeGateway

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:router/ca-AbCdEf"
CHAT = {"model": "bank-bot", "messages": [{"role": "user", "content": "opening hours?"}]}


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


def _cert(subject: str, issuer: Issued | None, *, ca: bool, sans: list[x509.GeneralName], usage: Any) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return Issued(key, builder.sign(issuer.key if issuer else key, hashes.SHA256()))


def make_ca(cn: str) -> Issued:
    return _cert(cn, None, ca=True, sans=[], usage=None)


LOCAL_SANS: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]


@dataclass
class PKI:
    ca: Issued
    other_ca: Issued
    server: Issued  # 127.0.0.1/localhost, signed by ca
    server_other: Issued  # 127.0.0.1/localhost, signed by other_ca
    server_wrong_name: Issued  # gateway.bank.internal only, signed by ca
    client: Issued  # client auth, signed by ca
    folder: Path

    def server_context(self, server: Issued, *, require_client_cert: bool = False) -> ssl.SSLContext:
        cert, key = self.folder / f"{uuid.uuid4().hex}.pem", self.folder / f"{uuid.uuid4().hex}.key"
        cert.write_text(server.cert_pem)
        key.write_text(server.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=self.ca.cert_pem)
        return ctx

    def client_secret(self, client: Issued | None = None, key: Issued | None = None) -> str:
        return json.dumps({"cert": (client or self.client).cert_pem, "key": (key or client or self.client).key_pem})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    ca, other = make_ca("Bank Test Root CA"), make_ca("Someone Else's CA")
    server_usage = ExtendedKeyUsageOID.SERVER_AUTH
    return PKI(
        ca=ca,
        other_ca=other,
        server=_cert("gateway", ca, ca=False, sans=LOCAL_SANS, usage=server_usage),
        server_other=_cert("gateway", other, ca=False, sans=LOCAL_SANS, usage=server_usage),
        server_wrong_name=_cert(
            "gateway", ca, ca=False, sans=[x509.DNSName("gateway.bank.internal")], usage=server_usage
        ),
        client=_cert("router", ca, ca=False, sans=[], usage=ExtendedKeyUsageOID.CLIENT_AUTH),
        folder=tmp_path_factory.mktemp("pki"),
    )


@pytest.fixture(scope="module")
def put_secret(aws_env: None) -> Any:
    sm = boto3.client("secretsmanager", region_name=REGION)

    def put(value: str) -> str:
        return str(sm.create_secret(Name=f"router/tls/{uuid.uuid4().hex}", SecretString=value)["ARN"])

    return put


@pytest.fixture
def https_gateway(pki: PKI, request: pytest.FixtureRequest) -> Iterator[FakeGateway]:
    """Params: (which server certificate, whether client certificates are required)."""
    server, mutual = getattr(request, "param", ("server", False))
    gw = FakeGateway(tls=pki.server_context(getattr(pki, server), require_client_cert=mutual))
    yield gw
    gw.close()


def target(url: str, key_arn: str, tls: GatewayTLS) -> LocalTarget:
    return LocalTarget(url, SecretCache(key_arn), 3.0, tls=tls)


def unavailable(t: LocalTarget) -> TargetUnavailable:
    with pytest.raises(TargetUnavailable) as info:
        t.complete(dict(CHAT))
    return info.value


def test_pinned_ca_succeeds_and_trusts_only_that_bundle(
    pki: PKI, https_gateway: FakeGateway, secret_arn: str, put_secret: Any
) -> None:
    tls = GatewayTLS.from_arns(put_secret(pki.ca.cert_pem), "")
    answer = target(https_gateway.url, secret_arn, tls).complete(dict(CHAT))
    assert answer["choices"][0]["message"]["content"] == "echo: opening hours?"
    ctx = tls.context()
    assert ctx is not None and ctx is tls.context()  # cached
    # Only the pinned CA: the system trust store was not loaded next to it.
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "Bank Test Root CA"),),)]
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("https_gateway", [("server_other", False)], indirect=True)
def test_certificate_from_another_ca_fails_closed(
    pki: PKI, https_gateway: FakeGateway, secret_arn: str, put_secret: Any
) -> None:
    err = unavailable(target(https_gateway.url, secret_arn, GatewayTLS.from_arns(put_secret(pki.ca.cert_pem), "")))
    assert err.code == "local_tls_untrusted" and "not trusted" in err.message
    assert https_gateway.requests == []  # the request never reached the untrusted server


@pytest.mark.parametrize("https_gateway", [("server_wrong_name", False)], indirect=True)
def test_hostname_is_checked(pki: PKI, https_gateway: FakeGateway, secret_arn: str, put_secret: Any) -> None:
    err = unavailable(target(https_gateway.url, secret_arn, GatewayTLS.from_arns(put_secret(pki.ca.cert_pem), "")))
    assert err.code == "local_tls_untrusted" and https_gateway.requests == []


@pytest.mark.parametrize("https_gateway", [("server", True)], indirect=True)
def test_mutual_tls_needs_the_client_certificate(
    pki: PKI, https_gateway: FakeGateway, secret_arn: str, put_secret: Any
) -> None:
    ca_arn = put_secret(pki.ca.cert_pem)
    err = unavailable(target(https_gateway.url, secret_arn, GatewayTLS.from_arns(ca_arn, "")))
    # The server rejects the handshake (alert or reset, timing decides which the client reads first).
    assert err.code in ("local_tls_failed", "local_unreachable") and https_gateway.requests == []
    assert any(isinstance(e, ssl.SSLError) for e in https_gateway.errors)  # the server refused the handshake
    tls = GatewayTLS.from_arns(ca_arn, put_secret(pki.client_secret()))
    answer = target(https_gateway.url, secret_arn, tls).complete(dict(CHAT))
    assert answer["choices"][0]["message"]["content"] == "echo: opening hours?"
    assert len(https_gateway.requests) == 1


@pytest.mark.parametrize("https_gateway", [("server", True)], indirect=True)
def test_router_wires_both_secrets_from_its_settings(
    pki: PKI, https_gateway: FakeGateway, secret_arn: str, put_secret: Any
) -> None:
    env = {
        "ROUTER_POLICY": "local_only",
        "ROUTER_LOCAL_URL": https_gateway.url,
        "ROUTER_LOCAL_SECRET_ARN": secret_arn,
        "ROUTER_LOCAL_CA_SECRET_ARN": put_secret(pki.ca.cert_pem),
        "ROUTER_LOCAL_CLIENT_CERT_SECRET_ARN": put_secret(pki.client_secret()),
    }
    event = {"rawPath": "/v1/chat/completions", "body": json.dumps(CHAT), "requestContext": {"http": {}}}
    resp = handler.Router(Settings.from_env(env)).handle(event)
    assert resp["statusCode"] == 200, resp["body"]
    assert resp["headers"]["x-route-target"] == "local" and len(https_gateway.requests) == 1
    # The same settings against a gateway whose certificate another CA signed: the local target fails closed, and
    # with no cloud endpoint configured the router answers 503 instead of trusting it.
    other = FakeGateway(tls=pki.server_context(pki.server_other))
    try:
        router = handler.Router(Settings.from_env(env | {"ROUTER_LOCAL_URL": other.url}))
        assert unavailable(router.targets["local"]).code == "local_tls_untrusted"  # type: ignore[arg-type]
        assert router.handle(event)["statusCode"] == 503
    finally:
        other.close()
    assert other.requests == []


def _malformed(pki: PKI) -> list[tuple[str, str, str, str]]:
    """(case, CA secret, client-cert secret, expected code)."""
    ca = pki.ca.cert_pem
    return [
        ("ca not PEM", "this is not a certificate", "", "local_ca_invalid"),
        ("ca bad base64", "-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n", "", "local_ca_invalid"),
        ("ca is a private key", pki.client.key_pem, "", "local_ca_invalid"),
        ("client not JSON", ca, pki.client.key_pem, "local_client_cert_invalid"),
        ("client without key", ca, json.dumps({"cert": pki.client.cert_pem}), "local_client_cert_invalid"),
        ("client key of another cert", ca, pki.client_secret(key=pki.server), "local_client_cert_invalid"),
        ("client cert not PEM", ca, json.dumps({"cert": "x", "key": pki.client.key_pem}), "local_client_cert_invalid"),
    ]


def test_malformed_secrets_are_a_clear_code_without_the_value(
    pki: PKI, https_gateway: FakeGateway, secret_arn: str, put_secret: Any
) -> None:
    for case, ca, client, code in _malformed(pki):
        tls = GatewayTLS.from_arns(put_secret(ca), put_secret(client) if client else "")
        err = unavailable(target(https_gateway.url, secret_arn, tls))
        assert err.code == code, case
        text = err.body().decode()
        assert (CA_WHAT if code.startswith("local_ca") else CLIENT_CERT_WHAT) in text, case
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text and pki.client.key_pem[40:80] not in text
    assert https_gateway.requests == []


def test_unreadable_secrets_are_unavailable(https_gateway: FakeGateway, secret_arn: str, put_secret: Any) -> None:
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:router/none-AbCdEf"
    err = unavailable(target(https_gateway.url, secret_arn, GatewayTLS.from_arns(missing, "")))
    assert err.code == "local_ca_unavailable" and "ResourceNotFoundException" in err.message
    ca = put_secret("unused")
    err = unavailable(target(https_gateway.url, secret_arn, GatewayTLS.from_arns(ca, missing)))
    assert err.code == "local_client_cert_unavailable"


def test_client_key_is_written_private_and_removed_after_loading(
    pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[dict[str, Any]] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, keyfile: str | None = None, password: Any = None) -> None:
        folder = os.path.dirname(certfile)
        seen.append(
            {
                "folder": folder,
                "folder_mode": stat.S_IMODE(os.stat(folder).st_mode),
                "modes": [stat.S_IMODE(os.stat(p).st_mode) for p in (certfile, keyfile or certfile)],
                "key": Path(keyfile or certfile).read_text(),
            }
        )
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    ctx = build_context(pki.ca.cert_pem, pki.client_secret())
    assert isinstance(ctx, ssl.SSLContext) and len(seen) == 1
    assert Path(seen[0]["folder"]).parent == tmp_path
    assert seen[0]["folder_mode"] == 0o700 and seen[0]["modes"] == [0o600, 0o600]
    assert seen[0]["key"] == pki.client.key_pem
    assert list(tmp_path.iterdir()) == []  # key, certificate and folder are gone
    with pytest.raises(TargetUnavailable):  # a key that does not match: removed all the same
        build_context(pki.ca.cert_pem, pki.client_secret(key=pki.server))
    assert len(seen) == 2 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("https_gateway", [("server_other", False)], indirect=True)
def test_rotated_ca_is_picked_up_when_the_cache_expires(
    pki: PKI, https_gateway: FakeGateway, secret_arn: str, put_secret: Any
) -> None:
    arn = put_secret(pki.ca.cert_pem)
    cached = GatewayTLS.from_arns(arn, "")  # the default 5-minute TTL
    expiring = GatewayTLS(
        SecretCache(arn, what=CA_WHAT, code="local_ca_unavailable", parse=str, ttl_s=0.0),
        SecretCache("", what=CLIENT_CERT_WHAT),
    )
    first = expiring.context()
    assert expiring.context() is first  # re-read, same value: the context is kept
    before = cached.context()
    assert unavailable(target(https_gateway.url, secret_arn, expiring)).code == "local_tls_untrusted"
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=arn, SecretString=pki.other_ca.cert_pem
    )
    assert cached.context() is before  # still inside its TTL
    answer = target(https_gateway.url, secret_arn, expiring).complete(dict(CHAT))
    assert answer["choices"][0]["message"]["content"] == "echo: opening hours?"
    assert expiring.context() is not first


def test_settings_read_and_validate_the_tls_secrets() -> None:
    assert set(TLS_SECRET_VARS) <= set(ENV_VARS) and len(set(ENV_VARS)) == len(ENV_VARS)
    cert_arn = ARN.replace("router/ca", "router/client")
    s = Settings.from_env(
        {
            "ROUTER_LOCAL_URL": "https://gateway.bank.internal:8443",
            "ROUTER_LOCAL_CA_SECRET_ARN": ARN,
            "ROUTER_LOCAL_CLIENT_CERT_SECRET_ARN": cert_arn,
        }
    )
    assert (s.local_ca_secret_arn, s.local_client_cert_secret_arn) == (ARN, cert_arn)
    assert Settings.from_env({}).local_ca_secret_arn == ""
    with pytest.raises(SettingsError, match="ROUTER_LOCAL_CA_SECRET_ARN.*ROUTER_LOCAL_URL.*https://"):
        Settings.from_env({"ROUTER_LOCAL_URL": "http://gateway:8080", "ROUTER_LOCAL_CA_SECRET_ARN": ARN})
    with pytest.raises(SettingsError, match="ROUTER_LOCAL_CLIENT_CERT_SECRET_ARN.*ROUTER_LOCAL_URL"):
        Settings.from_env({"ROUTER_LOCAL_URL": "http://gateway:8080", "ROUTER_LOCAL_CLIENT_CERT_SECRET_ARN": ARN})
    for bad in ("router/ca", "arn:aws:s3:::bucket", "arn:aws:secretsmanager:us-east-1:123:secret:x", ARN + " "):
        with pytest.raises(SettingsError, match="ROUTER_LOCAL_CA_SECRET_ARN=.*expected a Secrets Manager secret ARN"):
            Settings.from_env({"ROUTER_LOCAL_CA_SECRET_ARN": bad})
