"""``network:`` section — the private path between AWS and the premises for hybrid mode (docs/NETWORK.md).

The hybrid router Lambda calls the on-prem gateway, and the on-prem side calls the SageMaker endpoint. This section
says which network carries that traffic: a VPC with private subnets only (created, or an existing one by id), the
link to the premises (site-to-site VPN, Direct Connect gateway, Transit Gateway, or routes managed elsewhere), the
interface VPC endpoints that keep AWS API calls off the internet, and the gateway's TLS trust (CA pinning, mTLS).

For prod-like environments the private path is the default: an ``http://`` gateway URL or a router outside a VPC is
refused unless ``overrides`` names the rule with a reason (``make review`` lists every override).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from config.base import Section

# Environments whose name starts with one of these are prod-like unless network.enforce_private_path says otherwise.
PROD_LIKE_RE = re.compile(r"^(prod|production|prd|staging|stage|stg|uat|preprod)(-|$)")
OverrideRule = Literal["http_local_url", "router_outside_vpc"]
EndpointService = Literal["sagemaker_runtime", "secretsmanager", "kms", "logs", "sts"]
# The router Lambda calls these two AWS APIs; in subnets without an internet route it needs their endpoints.
ROUTER_ENDPOINTS: tuple[EndpointService, ...] = ("sagemaker_runtime", "secretsmanager")
DEFAULT_ENDPOINTS: list[EndpointService] = ["sagemaker_runtime", "secretsmanager", "kms", "logs"]
MIN_OVERRIDE_REASON = 30
# ASNs reserved by AWS in some regions; EC2 refuses them for a customer gateway.
AWS_RESERVED_ASNS = frozenset({7224, 9059, 10124, 17943})

_INTERNAL = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))

Cidr = Annotated[str, Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")]


def _network(value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IPv4 network with its host bits zero ({exc})") from None


def _check_cidrs(values: list[str]) -> list[str]:
    for v in values:
        net = _network(v)
        if net.prefixlen == 0:
            raise ValueError(f"{v!r} is everything: name the on-prem networks, never 0.0.0.0/0")
    return values


# boto3's per-service endpoint variables (AWS_ENDPOINT_URL_<service id>) for each interface endpoint.
BOTO3_ENDPOINT_ENV: dict[str, str] = {
    "sagemaker_runtime": "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
    "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "kms": "AWS_ENDPOINT_URL_KMS",
    "logs": "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
    "sts": "AWS_ENDPOINT_URL_STS",
}


def endpoint_output_key(service: str) -> str:
    """The hybrid stack's output holding an interface endpoint's DNS name, e.g. ``EndpointDnsSagemakerRuntime``."""
    return "EndpointDns" + "".join(part.capitalize() for part in service.split("_"))


def gateway_port(url: str) -> int:
    """The TCP port the router connects to: the URL's port, or 443 / 80 by scheme."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


class Override(Section):
    """An accepted exception to the private-path rules, with the reason a reviewer reads on the review page."""

    rule: OverrideRule
    reason: str = Field(
        min_length=MIN_OVERRIDE_REASON, description="why, who accepted the risk and until when (>= 30 characters)"
    )


class VpnSection(Section):
    """A site-to-site IPsec VPN to the on-prem VPN device (customer gateway)."""

    customer_gateway_ip: str = Field(description="public IPv4 address of the on-prem VPN device")
    customer_gateway_asn: int = Field(default=65000, ge=1, le=4294967294, description="BGP ASN of the on-prem device")
    routing: Literal["static", "bgp"] = Field(
        default="static", description="static: routes to network.onprem_cidrs; bgp: learned from the device"
    )
    attach: Literal["vgw", "transit_gateway"] = Field(
        default="vgw", description="terminate on a new virtual private gateway or on link.transit_gateway_id"
    )

    @field_validator("customer_gateway_ip")
    @classmethod
    def _public_ip(cls, v: str) -> str:
        try:
            ip = ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv4 address") from None
        # Documentation ranges (203.0.113.0/24, ...) pass so examples can use them; private ones never work.
        if (
            ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_unspecified
            or any(ip in n for n in _INTERNAL)
        ):
            raise ValueError(f"{v} is not a public address; AWS VPN endpoints connect to the device's public IP")
        return v

    @field_validator("customer_gateway_asn")
    @classmethod
    def _asn(cls, v: int) -> int:
        if v in AWS_RESERVED_ASNS:
            raise ValueError(f"{v} is reserved by AWS; use your device's ASN (private range 64512-65534)")
        return v


class LinkSection(Section):
    """How the VPC reaches the premises."""

    type: Literal["none", "vpn", "direct_connect", "transit_gateway", "existing"] = Field(
        default="none",
        description="vpn: build a site-to-site VPN; direct_connect: a virtual private gateway for an existing "
        "Direct Connect gateway; transit_gateway: attach to an existing TGW that reaches on-prem; existing: the "
        "VPC's route tables already reach on-prem (network.mode existing only)",
    )
    vpn: VpnSection | None = None
    direct_connect_gateway_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )
    transit_gateway_id: str | None = Field(default=None, pattern=r"^tgw-[0-9a-f]{8,17}$")
    amazon_side_asn: int = Field(default=64512, ge=64512, le=65534, description="ASN of the virtual private gateway")

    @model_validator(mode="after")
    def _needs(self) -> LinkSection:
        if self.type == "vpn":
            if self.vpn is None:
                raise ValueError("vpn: required when type is 'vpn' (customer_gateway_ip, customer_gateway_asn, ...)")
            if self.vpn.attach == "transit_gateway":
                if not self.transit_gateway_id:
                    raise ValueError("transit_gateway_id: required when vpn.attach is 'transit_gateway'")
                if self.vpn.routing == "static":
                    raise ValueError(
                        "vpn.routing: use 'bgp' with a transit gateway (static routes on a TGW route table need the "
                        "VPN's attachment id, which CloudFormation cannot name)"
                    )
        elif self.vpn is not None:
            raise ValueError(f"vpn: only used when type is 'vpn' (type is {self.type!r}); remove it")
        if self.type == "direct_connect" and not self.direct_connect_gateway_id:
            raise ValueError("direct_connect_gateway_id: required when type is 'direct_connect'")
        if self.type == "transit_gateway" and not self.transit_gateway_id:
            raise ValueError("transit_gateway_id: required when type is 'transit_gateway'")
        return self

    @property
    def transit_gateway(self) -> bool:
        """Whether the VPC routes to the premises through a transit gateway attachment."""
        return self.type == "transit_gateway" or (
            self.type == "vpn" and self.vpn is not None and self.vpn.attach == "transit_gateway"
        )


class GatewayTlsSection(Section):
    """How the router trusts the on-prem gateway's TLS certificate (the router reads both secrets at run time)."""

    pin_ca: bool = Field(
        default=False,
        description="trust only the CA bundle (PEM) stored in a Secrets Manager secret the stack creates, "
        "instead of the public CAs",
    )
    mutual_tls: bool = Field(
        default=False,
        description='present a client certificate: the stack creates a secret for {"cert": PEM, "key": PEM}',
    )


class DnsForwardSection(Section):
    """Forward one on-prem DNS domain to the on-prem DNS servers, so the router resolves the gateway's name."""

    domain: str = Field(
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
        description="e.g. bank.internal; router.local_url's host must be inside it",
    )
    servers: list[Annotated[str, Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}$")]] = Field(
        min_length=1, max_length=6, description="on-prem DNS server IPv4 addresses (inside onprem_cidrs)"
    )


class NetworkConfig(Section):
    """The hybrid network path; ``mode: none`` keeps the router outside any VPC (refused for prod-like envs)."""

    mode: Literal["none", "create", "existing"] = Field(
        default="none", description="create: a new VPC with private subnets only; existing: name one by id"
    )
    cidr: str = Field(default="10.30.0.0/16", pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$", description="mode create")
    vpc_id: str | None = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$")
    subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(default_factory=list)
    route_table_ids: list[Annotated[str, Field(pattern=r"^rtb-[0-9a-f]{8,17}$")]] = Field(
        default_factory=list, description="mode existing: the subnets' route tables, for routes to on-prem"
    )
    availability_zones: list[str] = Field(default_factory=list, description="mode existing: one per subnet id")
    onprem_cidrs: list[Cidr] = Field(default_factory=list, description="the on-prem networks routed over the link")
    gateway_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="the on-prem gateway's addresses: the router may open connections only to these, on the port "
        "of router.local_url",
    )
    link: LinkSection = LinkSection()
    interface_endpoints: list[EndpointService] = Field(
        default_factory=lambda: list(DEFAULT_ENDPOINTS),
        description="interface VPC endpoints (PrivateLink, private DNS on), reachable from the router and on-prem",
    )
    inbound_resolver: bool = Field(
        default=False,
        description="a Route 53 Resolver inbound endpoint, so on-prem DNS can forward AWS names to private IPs",
    )
    dns_forward: DnsForwardSection | None = Field(
        default=None,
        description="a Route 53 Resolver outbound endpoint and rule for the on-prem domain; without it the gateway's "
        "name must resolve in the VPC (private hosted zone) or local_url must use an IP",
    )
    gateway_tls: GatewayTlsSection = GatewayTlsSection()
    enforce_private_path: bool = Field(
        default=False,
        description="apply the prod-like rules (https gateway, router in a VPC) to this environment too; prod-like "
        "names always get them, and only a reasoned override lifts one",
    )
    overrides: list[Override] = Field(default_factory=list)

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        net = _network(v)
        if not 16 <= net.prefixlen <= 24:
            raise ValueError(f"{v}: a VPC CIDR must be /16 to /24 (two /26 or larger subnets)")
        return v

    @field_validator("onprem_cidrs", "gateway_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        return _check_cidrs(v)

    @field_validator("interface_endpoints")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists a service twice")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> NetworkConfig:
        if self.mode == "none":
            if (
                self.link.type != "none"
                or self.onprem_cidrs
                or self.gateway_cidrs
                or self.inbound_resolver
                or self.dns_forward
            ):
                raise ValueError("mode: 'none' builds no network; set mode create/existing to use link, CIDRs, DNS")
            return self
        self._check_mode_fields()
        if not self.onprem_cidrs:
            raise ValueError("onprem_cidrs: name the on-prem networks routed over the link, e.g. [10.0.0.0/16]")
        if not self.gateway_cidrs:
            raise ValueError("gateway_cidrs: name the on-prem gateway's addresses, e.g. [10.0.5.10/32]")
        onprem = [_network(c) for c in self.onprem_cidrs]
        for c in self.gateway_cidrs:
            if not any(_network(c).subnet_of(n) for n in onprem):
                raise ValueError(f"gateway_cidrs: {c} is not inside onprem_cidrs; the link routes only those")
        for ip in self.dns_forward.servers if self.dns_forward else []:
            if not any(_in(ip, c) for c in self.onprem_cidrs):
                raise ValueError(f"dns_forward.servers: {ip} is not inside onprem_cidrs; the link routes only those")
        if self.mode == "create":
            vpc = _network(self.cidr)
            for n in onprem:
                if n.overlaps(vpc):
                    raise ValueError(f"onprem_cidrs: {n} overlaps the VPC cidr {vpc}; routes would be ambiguous")
        missing = [s for s in ROUTER_ENDPOINTS if s not in self.interface_endpoints]
        if missing:
            raise ValueError(
                f"interface_endpoints: the router needs {', '.join(missing)} (its subnets have no internet route)"
            )
        return self

    def _check_mode_fields(self) -> None:
        if self.mode == "create":
            if self.vpc_id or self.subnet_ids or self.route_table_ids or self.availability_zones:
                raise ValueError("vpc_id: only for mode 'existing' (as are subnet_ids, route_table_ids, zones)")
            if self.link.type in ("none", "existing"):
                raise ValueError(
                    f"link.type: a new VPC has no route to the premises with {self.link.type!r}; "
                    "use vpn, direct_connect or transit_gateway"
                )
            return
        if not self.vpc_id:
            raise ValueError("vpc_id: required when mode is 'existing'")
        if len(self.subnet_ids) < 2:
            raise ValueError("subnet_ids: give at least 2 private subnets (in different AZs) when mode is 'existing'")
        if len(self.availability_zones) != len(self.subnet_ids):
            raise ValueError("availability_zones: give one AZ per subnet id when mode is 'existing'")
        if self.link.type == "none":
            raise ValueError("link.type: say how the VPC reaches on-prem (existing if its routes already do)")
        if self.link.type != "existing" and not self.route_table_ids:
            raise ValueError(f"route_table_ids: required to add routes for link.type {self.link.type!r}")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


def is_prod_like(environment: str, network: NetworkConfig) -> bool:
    """Whether the private-path rules apply: always for prod-like names, else when ``enforce_private_path`` is set.

    There is deliberately no switch to turn them off for a prod-like name: that takes an override with a reason.
    """
    return network.enforce_private_path or PROD_LIKE_RE.match(environment) is not None


def private_path_problems(
    environment: str, network: NetworkConfig, local_url: str, router_enabled: bool, router_vpc: bool
) -> list[str]:
    """Every reason the config does not give the router a private, encrypted path (empty when it does).

    Args:
        environment: the environment name (decides prod-likeness unless network.enforce_private_path is set).
        network: the ``network:`` section.
        local_url: ``router.local_url``.
        router_enabled: whether the hybrid router is deployed at all.
        router_vpc: whether ``router.vpc`` attaches the Lambda to existing subnets.

    Returns:
        Messages in ``<field.path>: <problem and fix>`` form, for the config validator to raise.
    """
    problems: list[str] = []
    if network.enabled and not router_enabled:
        problems.append(
            "network.mode: the private path is built with the hybrid stack, which is off (router.enabled false or "
            "endpoint.enabled false); set network.mode none or enable both"
        )
    if network.enabled and router_vpc:
        problems.append(
            "router.vpc: the router is placed in network's subnets; remove router.vpc (or set network.mode none)"
        )
    https = local_url.startswith("https://")
    if not https and (network.gateway_tls.pin_ca or network.gateway_tls.mutual_tls):
        problems.append("network.gateway_tls: CA pinning and mutual TLS need an https:// router.local_url")
    host = urlsplit(local_url).hostname or ""
    if _is_ip(host) and network.gateway_cidrs and not any(_in(host, c) for c in network.gateway_cidrs):
        problems.append(
            f"router.local_url: host {host} is not inside network.gateway_cidrs; the router may connect only there"
        )
    forward = network.dns_forward
    if forward and not _is_ip(host) and not (host == forward.domain or host.endswith(f".{forward.domain}")):
        problems.append(f"router.local_url: host {host} is outside network.dns_forward.domain {forward.domain}")
    prod_like = router_enabled and is_prod_like(environment, network)
    violated: dict[str, str] = {}
    if prod_like and not https:
        violated["http_local_url"] = (
            f"router.local_url: {local_url!r} is plain http; environment {environment!r} is prod-like, so the "
            "gateway must be https:// (pin its CA with network.gateway_tls.pin_ca), or add network.overrides "
            "[{rule: http_local_url, reason: ...}]"
        )
    if prod_like and not (network.enabled or router_vpc):
        violated["router_outside_vpc"] = (
            f"network.mode: the router would reach the gateway over the public internet; environment "
            f"{environment!r} is prod-like, so set network.mode create/existing with a link (VPN, Direct Connect or "
            "transit gateway), or add network.overrides [{rule: router_outside_vpc, reason: ...}]"
        )
    overridden = {o.rule for o in network.overrides}
    problems += [msg for rule, msg in violated.items() if rule not in overridden]
    for rule in sorted(overridden - violated.keys()):
        problems.append(f"network.overrides: {rule!r} overrides nothing here; remove it so reviews stay accurate")
    if len(overridden) != len(network.overrides):
        problems.append("network.overrides: each rule may be overridden once")
    return problems


def _in(host: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(host) in _network(cidr)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True
