"""The router's TLS trust in the on-prem gateway: a pinned CA bundle and an optional client certificate (mutual TLS).

Both come from Secrets Manager (``ROUTER_LOCAL_CA_SECRET_ARN``: PEM text; ``ROUTER_LOCAL_CLIENT_CERT_SECRET_ARN``:
``{"cert": PEM, "key": PEM}``) through :class:`router.secrets.SecretCache`, so a renewal is picked up within its TTL.
With a CA bundle the router trusts only that bundle (never the system store); hostnames are checked; TLS >= 1.2.
``ssl`` is imported on first use, like ``urllib`` in ``router.targets``, to keep the decision path's cold start small.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from router.errors import TargetUnavailable
from router.secrets import SecretCache

if TYPE_CHECKING:
    import ssl

CA_WHAT = "local gateway CA bundle"
CLIENT_CERT_WHAT = "local gateway client certificate"


class GatewayTLS:
    """The ``ssl.SSLContext`` for calls to the gateway, built from the secrets and rebuilt when a re-read (after the
    cache TTL) returns a different value.

    Args:
        ca: the CA-bundle secret (empty ARN: the system trust store).
        client_cert: the client-certificate secret (empty ARN: no client certificate).
    """

    def __init__(self, ca: SecretCache, client_cert: SecretCache) -> None:
        self.ca = ca
        self.client_cert = client_cert
        self._context: ssl.SSLContext | None = None
        self._built_from: tuple[str, str] | None = None

    @classmethod
    def from_arns(
        cls, ca_arn: str, client_cert_arn: str, client_factory: Callable[[], Any] | None = None
    ) -> GatewayTLS:
        """The trust settings for two secret ARNs (either may be empty)."""
        return cls(
            SecretCache.raw(ca_arn, client_factory, what=CA_WHAT, code="local_ca_unavailable"),
            SecretCache.raw(
                client_cert_arn, client_factory, what=CLIENT_CERT_WHAT, code="local_client_cert_unavailable"
            ),
        )

    @property
    def configured(self) -> bool:
        """Whether either secret is set (otherwise urllib's default context applies)."""
        return bool(self.ca.secret_arn or self.client_cert.secret_arn)

    def context(self) -> ssl.SSLContext | None:
        """The context to pass to ``urlopen`` (None when nothing is configured).

        Raises:
            TargetUnavailable: a secret cannot be read (``local_ca_unavailable``, ``local_client_cert_unavailable``)
                or parsed (``local_ca_invalid``, ``local_client_cert_invalid``); messages never hold secret values.
        """
        if not self.configured:
            return None
        current = (self.ca.get(), self.client_cert.get())
        if self._context is None or current != self._built_from:
            self._context = build_context(*current)
            self._built_from = current
        return self._context


def build_context(ca_pem: str, client_cert_json: str) -> ssl.SSLContext:
    """A client context trusting only ``ca_pem`` (empty: the system store), with the client certificate if given.

    Raises:
        TargetUnavailable: ``local_ca_invalid`` or ``local_client_cert_invalid`` (what is wrong, never the value).
    """
    import ssl

    if ca_pem:
        if "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise TargetUnavailable(f"{CA_WHAT} holds no PEM certificate", code="local_ca_invalid")
        try:
            # cadata given: the system store is not loaded, so only this bundle is trusted.
            context = ssl.create_default_context(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise TargetUnavailable(
                f"{CA_WHAT} is not a valid PEM bundle ({type(exc).__name__})", code="local_ca_invalid"
            ) from None
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if client_cert_json:
        _load_client_cert(context, client_cert_json)
    return context


def _load_client_cert(context: ssl.SSLContext, raw: str) -> None:
    """``load_cert_chain`` from files (the ssl module reads only files) written 0600 into a private temporary folder
    and removed right after loading."""
    import ssl

    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        data = None
    if not (isinstance(data, dict) and isinstance(data.get("cert"), str) and isinstance(data.get("key"), str)):
        raise TargetUnavailable(
            f'{CLIENT_CERT_WHAT}: expected JSON {{"cert": "<PEM>", "key": "<PEM>"}}', code="local_client_cert_invalid"
        )
    folder = tempfile.mkdtemp(prefix="router-mtls-")  # mode 0700, owned by this process
    try:
        paths = {}
        for name in ("cert", "key"):
            paths[name] = os.path.join(folder, f"{name}.pem")
            fd = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data[name])
        # An encrypted key gets an empty password instead of OpenSSL's interactive prompt, and so fails here.
        context.load_cert_chain(paths["cert"], paths["key"], password=lambda: b"")
    except (ssl.SSLError, ValueError) as exc:
        raise TargetUnavailable(
            f"{CLIENT_CERT_WHAT}: certificate or key is not valid PEM, is encrypted, or they do not match "
            f"({type(exc).__name__})",
            code="local_client_cert_invalid",
        ) from None
    except OSError as exc:
        raise TargetUnavailable(
            f"{CLIENT_CERT_WHAT} could not be staged for loading ({type(exc).__name__})",
            code="local_client_cert_unavailable",
        ) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tls_failure(exc: BaseException) -> tuple[str, str] | None:
    """``(message, code)`` when ``exc`` (or the reason urllib wrapped) is a TLS failure, else None."""
    import ssl

    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"local gateway certificate not trusted ({reason.verify_message})", "local_tls_untrusted"
    if isinstance(reason, ssl.SSLError):
        return f"local gateway TLS handshake failed ({reason.reason or type(reason).__name__})", "local_tls_failed"
    return None
