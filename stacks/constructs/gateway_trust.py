"""The router's trust in the on-prem gateway's TLS: a pinned CA bundle and, optionally, a client certificate (mTLS).

Both live in Secrets Manager under the router's KMS key; operators put the values (they come from the bank's own PKI,
which AWS cannot reach), the router reads them at run time through the variables below.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.nag import acknowledge

# Lambda environment variables the router runtime reads (router/settings.py owns the runtime side).
CA_SECRET_ENV = "ROUTER_LOCAL_CA_SECRET_ARN"  # noqa: S105 (a variable name, not a secret)
CLIENT_CERT_SECRET_ENV = "ROUTER_LOCAL_CLIENT_CERT_SECRET_ARN"  # noqa: S105 (a variable name, not a secret)
ROTATION_REASON = (
    "The value comes from the bank's on-prem PKI, which AWS cannot reach to rotate it; operators renew the "
    "certificate there and put the new value here (docs/NETWORK.md)."
)


class GatewayTrust(Construct):
    """Secrets for pinning the gateway's CA and for the router's client certificate; see ``grant_to``.

    Args:
        key: the router's KMS key (the secrets are encrypted with it).
        pin_ca: create the CA-bundle secret (PEM text).
        mutual_tls: create the client-certificate secret (``{"cert": PEM, "key": PEM}``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, pin_ca: bool, mutual_tls: bool) -> None:
        super().__init__(scope, construct_id)
        self.ca_bundle = (
            self._secret("CaBundle", "PEM CA bundle the router trusts for the on-prem gateway", key) if pin_ca else None
        )
        self.client_cert = (
            self._secret("ClientCert", 'Router client certificate for the gateway: {"cert": PEM, "key": PEM}', key)
            if mutual_tls
            else None
        )

    def _secret(self, construct_id: str, description: str, key: kms.IKey) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self, construct_id, description=description, encryption_key=key, removal_policy=RemovalPolicy.RETAIN
        )
        for rule in ("AwsSolutions-SMG4", "HIPAA.Security-SecretsManagerRotationEnabled"):
            acknowledge(secret, rule, ROTATION_REASON)
        return secret

    def grant_to(self, function: lambda_.Function) -> dict[str, str]:
        """Let ``function`` read the secrets and tell it their ARNs; returns the variables it set."""
        env: dict[str, str] = {}
        for name, secret in ((CA_SECRET_ENV, self.ca_bundle), (CLIENT_CERT_SECRET_ENV, self.client_cert)):
            if secret is not None:
                secret.grant_read(function)
                function.add_environment(name, secret.secret_arn)
                env[name] = secret.secret_arn
        return env
