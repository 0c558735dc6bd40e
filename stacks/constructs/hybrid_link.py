"""The AWS side of the hybrid link: private subnets, the VPN / Direct Connect / Transit Gateway path to the premises,
interface VPC endpoints (PrivateLink) and the router's security group, all from the ``network:`` config section.

Nothing here routes to the internet: the subnets are isolated, the router's security group opens connections only to
the on-prem gateway (its CIDRs, the port of ``router.local_url``) and to the endpoints, and AWS APIs are reached
through PrivateLink with private DNS, so the same names resolve to private addresses inside the VPC.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnOutput, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53resolver as resolver
from constructs import Construct

from config.network_section import NetworkConfig, endpoint_output_key
from stacks.constructs.network import isolated_vpc

HTTPS = 443
DNS = 53
ENDPOINT_SERVICES: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "sagemaker_runtime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "secretsmanager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "sts": ec2.InterfaceVpcEndpointAwsService.STS,
}
# CloudFormation identifies a VPN connection type by this string; it is the only type AWS offers.
IPSEC = "ipsec.1"


class HybridLink(Construct):
    """Private network for the hybrid router and the on-prem side's calls into AWS.

    Args:
        network: the validated ``network:`` section (mode create or existing).
        gateway_port: TCP port of the on-prem gateway (from ``router.local_url``).

    Attributes:
        vpc, subnet_ids, route_table_ids: where the router runs.
        router_sg: the router Lambda's security group (egress to the gateway and the endpoints only).
        endpoint_sg: the interface endpoints' security group (HTTPS in from the router and on-prem).
        endpoints: interface endpoints by config name (``sagemaker_runtime``, ``secretsmanager``, ...).
        key: encrypts the flow-log and VPN tunnel-log groups.
    """

    def __init__(self, scope: Construct, construct_id: str, *, network: NetworkConfig, gateway_port: int) -> None:
        super().__init__(scope, construct_id)
        if not network.enabled:
            raise ValueError("network.mode: 'none' has no link to build")
        self.network = network
        self.key = kms.Key(
            self,
            "Key",
            description="Hybrid link: VPC flow logs and VPN tunnel logs",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._vpc(network)
        self.router_sg = ec2.SecurityGroup(
            self,
            "RouterSg",
            vpc=self.vpc,
            description="Hybrid router Lambda: out to the on-prem gateway and the VPC endpoints only",
            allow_all_outbound=False,
        )
        for cidr in network.gateway_cidrs:
            self.router_sg.add_egress_rule(
                ec2.Peer.ipv4(cidr), ec2.Port.tcp(gateway_port), f"on-prem gateway {cidr} over the link"
            )
        self.endpoint_sg = ec2.SecurityGroup(
            self,
            "EndpointSg",
            vpc=self.vpc,
            description="Interface VPC endpoints: HTTPS in from the router and the on-prem networks",
            allow_all_outbound=False,
        )
        self.router_sg.connections.allow_to(self.endpoint_sg, ec2.Port.tcp(HTTPS), "router to AWS APIs (PrivateLink)")
        for cidr in network.onprem_cidrs:
            self.endpoint_sg.add_ingress_rule(
                ec2.Peer.ipv4(cidr), ec2.Port.tcp(HTTPS), f"on-prem {cidr} to AWS APIs over the link"
            )
        self.endpoints = {name: self._endpoint(name) for name in network.interface_endpoints}
        self._link(network)
        if network.inbound_resolver:
            self._inbound_resolver(network)
        if network.dns_forward:
            self._dns_forward(network)

    def _vpc(self, network: NetworkConfig) -> None:
        if network.mode == "create":
            vpc = isolated_vpc(
                self, "Vpc", cidr=network.cidr, key=self.key, flow_log_retention=logs.RetentionDays.ONE_YEAR
            )
            self.vpc: ec2.IVpc = vpc
            self.subnet_ids = [s.subnet_id for s in vpc.isolated_subnets]
            self.route_table_ids = [s.route_table.route_table_id for s in vpc.isolated_subnets]
            return
        self.vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=network.vpc_id or "",
            availability_zones=list(network.availability_zones),
            isolated_subnet_ids=list(network.subnet_ids),
        )
        self.subnet_ids = list(network.subnet_ids)
        self.route_table_ids = list(network.route_table_ids)

    def _endpoint(self, name: str) -> ec2.InterfaceVpcEndpoint:
        stack = Stack.of(self)
        endpoint = ec2.InterfaceVpcEndpoint(
            self,
            f"Endpoint-{name}",
            vpc=self.vpc,
            service=ENDPOINT_SERVICES[name],
            private_dns_enabled=True,
            security_groups=[self.endpoint_sg],
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            # Ingress is the endpoint SG's explicit rules only (router SG, on-prem CIDRs), not the whole VPC CIDR.
            open=False,
        )
        # Data perimeter: the endpoint serves callers of this account only, so it cannot carry data to another one.
        endpoint.add_to_policy(
            iam.PolicyStatement(
                actions=["*"],
                resources=["*"],
                principals=[iam.AnyPrincipal()],
                conditions={"StringEquals": {"aws:PrincipalAccount": stack.account}},
            )
        )
        dns = Fn.select(1, Fn.split(":", Fn.select(0, endpoint.vpc_endpoint_dns_entries)))
        output = CfnOutput(
            self, f"EndpointDns-{name}", value=dns, description=f"{name} endpoint DNS, for on-prem callers"
        )
        # A stable key: `python -m stacks.onprem_env` reads the deployed outputs by these names.
        output.override_logical_id(endpoint_output_key(name))
        return endpoint

    def _link(self, network: NetworkConfig) -> None:
        link = network.link
        if link.type in ("vpn", "direct_connect") and not link.transit_gateway:
            self._virtual_private_gateway(network)
        if link.transit_gateway:
            self._transit_gateway_routes(network)
        if link.type == "vpn":
            self._vpn(network)
        if link.type == "direct_connect":
            CfnOutput(
                self,
                "DirectConnectAssociation",
                description="run once as the Direct Connect gateway's owner to carry the link over Direct Connect",
                value=Fn.join(
                    "",
                    [
                        "aws directconnect create-direct-connect-gateway-association --direct-connect-gateway-id ",
                        link.direct_connect_gateway_id or "",
                        " --gateway-id ",
                        self.vgw.attr_vpn_gateway_id,
                        " --add-allowed-prefixes-to-direct-connect-gateway cidr=",
                        network.cidr if network.mode == "create" else "<vpc-cidr>",
                    ],
                ),
            )

    def _virtual_private_gateway(self, network: NetworkConfig) -> None:
        self.vgw = ec2.CfnVPNGateway(self, "Vgw", type=IPSEC, amazon_side_asn=network.link.amazon_side_asn)
        attachment = ec2.CfnVPCGatewayAttachment(
            self, "VgwAttachment", vpc_id=self.vpc.vpc_id, vpn_gateway_id=self.vgw.ref
        )
        # Routes to the premises (static routes of the VPN, or BGP over the VPN / Direct Connect) reach the subnets'
        # route tables by propagation; nothing else is routed out of the VPC.
        propagation = ec2.CfnVPNGatewayRoutePropagation(
            self, "VgwRoutePropagation", route_table_ids=list(self.route_table_ids), vpn_gateway_id=self.vgw.ref
        )
        propagation.node.add_dependency(attachment)

    def _transit_gateway_routes(self, network: NetworkConfig) -> None:
        tgw = network.link.transit_gateway_id or ""
        attachment = ec2.CfnTransitGatewayVpcAttachment(
            self, "TgwAttachment", subnet_ids=list(self.subnet_ids), transit_gateway_id=tgw, vpc_id=self.vpc.vpc_id
        )
        for i, table in enumerate(self.route_table_ids):
            for j, cidr in enumerate(network.onprem_cidrs):
                route = ec2.CfnRoute(
                    self,
                    f"OnpremRoute{i}x{j}",
                    route_table_id=table,
                    destination_cidr_block=cidr,
                    transit_gateway_id=tgw,
                )
                route.node.add_dependency(attachment)

    def _vpn(self, network: NetworkConfig) -> None:
        vpn = network.link.vpn
        assert vpn is not None  # the config section guarantees it for type vpn
        cgw = ec2.CfnCustomerGateway(
            self, "CustomerGateway", type=IPSEC, ip_address=vpn.customer_gateway_ip, bgp_asn=vpn.customer_gateway_asn
        )
        self.tunnel_logs = logs.LogGroup(
            self,
            "TunnelLogs",
            encryption_key=self.key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._allow_logs_service()
        log_options = ec2.CfnVPNConnection.VpnTunnelLogOptionsSpecificationProperty(
            cloudwatch_log_options=ec2.CfnVPNConnection.CloudwatchLogOptionsSpecificationProperty(
                log_enabled=True, log_group_arn=self.tunnel_logs.log_group_arn, log_output_format="json"
            )
        )
        # Two tunnels, each IKEv2 with AES-256-GCM / SHA2-256 and DH groups 19-21 only (no legacy suites).
        tunnel = ec2.CfnVPNConnection.VpnTunnelOptionsSpecificationProperty(
            ike_versions=[ec2.CfnVPNConnection.IKEVersionsRequestListValueProperty(value="ikev2")],
            phase1_encryption_algorithms=[
                ec2.CfnVPNConnection.Phase1EncryptionAlgorithmsRequestListValueProperty(value="AES256-GCM-16")
            ],
            phase2_encryption_algorithms=[
                ec2.CfnVPNConnection.Phase2EncryptionAlgorithmsRequestListValueProperty(value="AES256-GCM-16")
            ],
            phase1_integrity_algorithms=[
                ec2.CfnVPNConnection.Phase1IntegrityAlgorithmsRequestListValueProperty(value="SHA2-256")
            ],
            phase2_integrity_algorithms=[
                ec2.CfnVPNConnection.Phase2IntegrityAlgorithmsRequestListValueProperty(value="SHA2-256")
            ],
            phase1_dh_group_numbers=[
                ec2.CfnVPNConnection.Phase1DHGroupNumbersRequestListValueProperty(value=g) for g in (19, 20, 21)
            ],
            phase2_dh_group_numbers=[
                ec2.CfnVPNConnection.Phase2DHGroupNumbersRequestListValueProperty(value=g) for g in (19, 20, 21)
            ],
            log_options=log_options,
        )
        static = vpn.routing == "static"
        self.vpn_connection = ec2.CfnVPNConnection(
            self,
            "Vpn",
            type=IPSEC,
            customer_gateway_id=cgw.ref,
            static_routes_only=static,
            # The tunnels' pre-shared keys are kept in Secrets Manager, not in the VPN service's plain storage.
            pre_shared_key_storage="SecretsManager",
            vpn_gateway_id=None if network.link.transit_gateway else self.vgw.ref,
            transit_gateway_id=network.link.transit_gateway_id if network.link.transit_gateway else None,
            vpn_tunnel_options_specifications=[tunnel, tunnel],
        )
        for i, cidr in enumerate(network.onprem_cidrs if static else []):
            ec2.CfnVPNConnectionRoute(
                self, f"VpnRoute{i}", destination_cidr_block=cidr, vpn_connection_id=self.vpn_connection.ref
            )
        CfnOutput(self, "VpnConnectionId", value=self.vpn_connection.ref, description="download the device config")

    def _allow_logs_service(self) -> None:
        stack = Stack.of(self)
        # CloudWatch Logs encrypts this construct's log groups with the key, only for log groups of this account.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )

    def _dns_sg(self, name: str, description: str) -> ec2.SecurityGroup:
        return ec2.SecurityGroup(self, name, vpc=self.vpc, description=description, allow_all_outbound=False)

    def _inbound_resolver(self, network: NetworkConfig) -> None:
        sg = self._dns_sg("InboundDnsSg", "Route 53 Resolver inbound endpoint: DNS from the on-prem networks")
        for cidr in network.onprem_cidrs:
            sg.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.udp(DNS), f"DNS from on-prem {cidr}")
            sg.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(DNS), f"DNS over TCP from on-prem {cidr}")
        self.inbound_resolver = resolver.CfnResolverEndpoint(
            self,
            "InboundResolver",
            direction="INBOUND",
            security_group_ids=[sg.security_group_id],
            ip_addresses=[resolver.CfnResolverEndpoint.IpAddressRequestProperty(subnet_id=s) for s in self.subnet_ids],
        )
        CfnOutput(
            self,
            "InboundResolverId",
            value=self.inbound_resolver.attr_resolver_endpoint_id,
            description="forward the endpoint names from on-prem DNS to this endpoint's IPs "
            "(aws route53resolver list-resolver-endpoint-ip-addresses)",
        )

    def _dns_forward(self, network: NetworkConfig) -> None:
        forward = network.dns_forward
        assert forward is not None
        sg = self._dns_sg("OutboundDnsSg", f"Route 53 Resolver outbound endpoint: DNS to on-prem for {forward.domain}")
        for ip in forward.servers:
            sg.add_egress_rule(ec2.Peer.ipv4(f"{ip}/32"), ec2.Port.udp(DNS), f"DNS to on-prem {ip}")
            sg.add_egress_rule(ec2.Peer.ipv4(f"{ip}/32"), ec2.Port.tcp(DNS), f"DNS over TCP to on-prem {ip}")
        endpoint = resolver.CfnResolverEndpoint(
            self,
            "OutboundResolver",
            direction="OUTBOUND",
            security_group_ids=[sg.security_group_id],
            ip_addresses=[resolver.CfnResolverEndpoint.IpAddressRequestProperty(subnet_id=s) for s in self.subnet_ids],
        )
        rule = resolver.CfnResolverRule(
            self,
            "ForwardRule",
            rule_type="FORWARD",
            domain_name=forward.domain,
            resolver_endpoint_id=endpoint.attr_resolver_endpoint_id,
            target_ips=[resolver.CfnResolverRule.TargetAddressProperty(ip=ip, port="53") for ip in forward.servers],
        )
        resolver.CfnResolverRuleAssociation(
            self, "ForwardRuleAssociation", resolver_rule_id=rule.attr_resolver_rule_id, vpc_id=self.vpc.vpc_id
        )
