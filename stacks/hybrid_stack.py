"""Stack: the hybrid router (composition only). ``app_builder`` wires it to the endpoint stack's endpoint."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from config import DeploymentConfig
from config.network_section import gateway_port
from config.router_section import router_environment
from stacks.constructs.gateway_trust import GatewayTrust
from stacks.constructs.hybrid_link import HybridLink
from stacks.constructs.router_api import RouterApi, RouterApiProps, RouterEndpoint


class HybridStack(Stack):
    """The router Lambda and its HTTP API, invoking ``endpoint``."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, endpoint: RouterEndpoint, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        r = config.router
        # The router runs in the link's private subnets (network:), in subnets named by router.vpc, or (dev) outside.
        self.link = (
            HybridLink(self, "Link", network=config.network, gateway_port=gateway_port(r.local_url))
            if config.network.enabled
            else None
        )
        subnet_ids = self.link.subnet_ids if self.link else list(r.vpc.subnet_ids)
        sg_ids = [self.link.router_sg.security_group_id] if self.link else list(r.vpc.security_group_ids)
        self.router = RouterApi(
            self,
            "Router",
            props=RouterApiProps(
                environment=router_environment(r),
                authorizer=r.authorizer.type,
                jwt_issuer=r.authorizer.issuer,
                jwt_audience=list(r.authorizer.audience),
                subnet_ids=subnet_ids,
                security_group_ids=sg_ids,
                memory_mb=r.memory_mb,
                timeout_s=r.lambda_timeout_s,
                log_retention_days=r.log_retention_days,
                alarm_emails=list(config.endpoint.alarms.email),
                throttle_rate=r.throttle_rate_per_s,
                throttle_burst=r.throttle_burst,
            ),
            endpoint=endpoint,
        )
        tls = config.network.gateway_tls
        self.gateway_trust = GatewayTrust(
            self, "GatewayTrust", key=self.router.key, pin_ca=tls.pin_ca, mutual_tls=tls.mutual_tls
        )
        self.gateway_trust.grant_to(self.router.function)
        CfnOutput(self, "ApiUrl", value=f"{self.router.api.api_endpoint}/v1/chat/completions")
        CfnOutput(self, "GatewayKeySecretArn", value=self.router.secret.secret_arn)
