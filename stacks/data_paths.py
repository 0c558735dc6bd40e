"""The "data paths" section of ``make review``: every way data moves between the premises and AWS.

Network facts (VPC placement, security-group egress, the VPN / Direct Connect / Transit Gateway link, PrivateLink
endpoints, DNS) are read from the synthesized templates, so the page shows what will be deployed; URLs, TLS trust,
routing policy and overrides come from the typed config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import DeploymentConfig

ROUTER_HANDLER = "router.handler.lambda_handler"
HOURS_PER_MONTH = 730
# Hourly list prices in us-east-1 as published by AWS when this was written (not fetched; data processing and
# transfer are extra). Other regions differ by a few percent.
USD_PER_HOUR = {
    "vpn_connection": 0.05,
    "interface_endpoint_az": 0.01,
    "resolver_endpoint_ip": 0.125,
    "tgw_attachment": 0.05,
}
Template = dict[str, Any]
ENDPOINT_NAMES = {
    "sagemaker.runtime": "SageMaker Runtime",
    "secretsmanager": "Secrets Manager",
    "kms": "KMS",
    "logs": "CloudWatch Logs",
    "sts": "STS",
}


@dataclass(frozen=True)
class DataPath:
    """One path: who talks to whom, how, protected how, over which network, carrying what."""

    path: str
    protocol: str
    encryption: str
    network: str
    data: str


@dataclass(frozen=True)
class NetworkFacts:
    """What the hybrid template says about the router's network."""

    in_vpc: bool
    egress: list[str]
    link: str
    endpoints: list[str]
    inbound_dns: bool
    dns_forward: str | None


def _resources(t: Template, rtype: str) -> dict[str, dict[str, Any]]:
    return {lid: r.get("Properties", {}) for lid, r in t.get("Resources", {}).items() if r["Type"] == rtype}


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def _endpoint_name(service: Any) -> str:
    text = json.dumps(service)
    return next((name for key, name in ENDPOINT_NAMES.items() if f".{key}" in text), text)


def network_facts(hybrid: Template) -> NetworkFacts:
    """Read the router's placement, egress rules, link and endpoints from the hybrid stack's template."""
    fns = [p for p in _resources(hybrid, "AWS::Lambda::Function").values() if p.get("Handler") == ROUTER_HANDLER]
    vpc_config = fns[0].get("VpcConfig") if fns else None
    egress: list[str] = []
    if vpc_config:
        groups = {_ref(g) for g in vpc_config.get("SecurityGroupIds", [])}
        sgs = _resources(hybrid, "AWS::EC2::SecurityGroup")
        for gid in groups:
            for rule in sgs.get(gid or "", {}).get("SecurityGroupEgress", []):
                egress.append(f"{rule.get('CidrIp')} tcp/{rule.get('FromPort')}")
        for rule in _resources(hybrid, "AWS::EC2::SecurityGroupEgress").values():
            if _ref(rule.get("GroupId")) in groups:
                dest = sgs.get(_ref(rule.get("DestinationSecurityGroupId")) or "", {})
                target = str(dest.get("GroupDescription", "")).split(":")[0] or rule.get("CidrIp")
                egress.append(f"{target} tcp/{rule.get('FromPort')}")
        if not (groups - {None}) <= set(sgs):
            egress.append("security groups managed outside this stack (router.vpc)")
    endpoints = [
        _endpoint_name(p["ServiceName"]) + (" (private DNS)" if p.get("PrivateDnsEnabled") else "")
        for p in _resources(hybrid, "AWS::EC2::VPCEndpoint").values()
        if p.get("VpcEndpointType") == "Interface"
    ]
    resolvers = [p.get("Direction") for p in _resources(hybrid, "AWS::Route53Resolver::ResolverEndpoint").values()]
    rules = [p.get("DomainName") for p in _resources(hybrid, "AWS::Route53Resolver::ResolverRule").values()]
    return NetworkFacts(
        in_vpc=bool(vpc_config),
        egress=sorted(egress),
        link=_link(hybrid) if vpc_config else "none",
        endpoints=sorted(endpoints),
        inbound_dns="INBOUND" in resolvers,
        dns_forward=", ".join(str(r) for r in rules) or None,
    )


def _link(hybrid: Template) -> str:
    vpns = list(_resources(hybrid, "AWS::EC2::VPNConnection").values())
    vgw = bool(_resources(hybrid, "AWS::EC2::VPNGateway"))
    tgw = bool(_resources(hybrid, "AWS::EC2::TransitGatewayVpcAttachment"))
    if vpns:
        tunnel = (vpns[0].get("VpnTunnelOptionsSpecifications") or [{}])[0]
        ike = "/".join(v["Value"] for v in tunnel.get("IKEVersions", [])) or "IKE default"
        cipher = "/".join(v["Value"] for v in tunnel.get("Phase2EncryptionAlgorithms", [])) or "AWS default ciphers"
        routing = "static routes" if vpns[0].get("StaticRoutesOnly") else "BGP"
        via = "transit gateway" if "TransitGatewayId" in vpns[0] else "virtual private gateway"
        return f"site-to-site VPN (IPsec {ike}, {cipher}, {routing}) on a {via}"
    if vgw:
        return (
            "Direct Connect (private circuit, BGP; not encrypted by itself, TLS inside) via a virtual private gateway"
        )
    if tgw:
        return "transit gateway attachment (the TGW carries the VPN / Direct Connect)"
    return "existing routes of the VPC (link managed outside this stack)"


def _over(facts: NetworkFacts, public: str) -> str:
    return f"private subnets → {facts.link}" if facts.in_vpc else public


def data_paths(cfg: DeploymentConfig, templates: dict[str, Template]) -> list[DataPath]:
    """Every path data can take between the premises and AWS for ``cfg``, from its synthesized ``templates``.

    Args:
        cfg: the typed config the templates were built from.
        templates: stack name → template (the hybrid stack's name ends in ``-hybrid``).

    Returns:
        One row per path; empty when the hybrid router is not deployed (no premises path exists).
    """
    hybrid = next((t for name, t in templates.items() if name.endswith("-hybrid")), None)
    if hybrid is None:
        return []
    facts = network_facts(hybrid)
    r, net = cfg.router, cfg.network
    overrides = {o.rule: o.reason for o in net.overrides}
    tls = net.gateway_tls
    if r.local_url.startswith("https://"):
        trust = "pinned CA bundle (Secrets Manager)" if tls.pin_ca else "public CA trust store"
        gateway_enc = f"TLS, {trust}" + (", client certificate (mTLS)" if tls.mutual_tls else "")
    else:
        gateway_enc = "NONE: plain http" + (
            f" (override: {overrides['http_local_url']})" if "http_local_url" in overrides else ""
        )
        if facts.link.startswith("site-to-site VPN"):
            gateway_enc += "; IPsec on the VPN leg only"
    public = "public internet" + (
        f" (override: {overrides['router_outside_vpc']})" if "router_outside_vpc" in overrides else ""
    )
    egress = f"; router egress only to {', '.join(facts.egress)}" if facts.egress else ""
    aws_api = "PrivateLink interface endpoint" if facts.in_vpc else "AWS public endpoint"
    cloud_data = (
        "complex requests; sensitive ones with each value replaced by a placeholder"
        if r.policy == "redact_to_cloud"
        else "complex requests without sensitive data"
    )
    rows = [
        DataPath(
            "client → router HTTP API (API Gateway)",
            f"HTTPS POST /v1/chat/completions, {r.authorizer.type.upper()} authorizer",
            "TLS (AWS-managed certificate)",
            "API Gateway public endpoint",
            "full request: prompts, possibly sensitive",
        ),
        DataPath(
            "router Lambda → on-prem gateway",
            f"{r.local_url.split('://')[0].upper()} POST {r.local_url}/v1/chat/completions, bearer key",
            gateway_enc,
            _over(facts, public) + egress,
            "sensitive and simple requests, full text; answers back",
        ),
        DataPath(
            "router Lambda → SageMaker endpoint",
            "HTTPS InvokeEndpoint (SigV4)",
            "TLS",
            aws_api + (" (private DNS)" if facts.in_vpc else ""),
            cloud_data,
        ),
        DataPath(
            "router Lambda → Secrets Manager",
            "HTTPS GetSecretValue (SigV4)",
            "TLS; secrets under the router's KMS key",
            aws_api,
            "gateway API key" + (", CA bundle" if tls.pin_ca else "") + (", client cert" if tls.mutual_tls else ""),
        ),
        DataPath(
            "router Lambda → CloudWatch Logs",
            "Lambda service log delivery",
            "TLS; log group under the router's KMS key",
            "AWS internal (not the function's network)",
            "decision metadata (target, reason, detected types, timings); never prompt text",
        ),
    ]
    onprem_net = (
        f"over the link to the interface endpoint ({'on-prem DNS forwards to the inbound resolver' if facts.inbound_dns else 'vpce-… DNS name from the stack outputs'})"
        if facts.in_vpc and any(e.startswith("SageMaker Runtime") for e in facts.endpoints)
        else "public internet to the AWS public endpoint"
    )
    rows.append(
        DataPath(
            "on-prem gateway / clients → SageMaker endpoint",
            "HTTPS InvokeEndpoint (SigV4)",
            "TLS",
            onprem_net,
            cloud_data + " (the gateway's hybrid route)",
        )
    )
    others = [e for e in facts.endpoints if not e.startswith("SageMaker Runtime")]
    if facts.in_vpc and others:
        rows.append(
            DataPath(
                "on-prem → other AWS APIs",
                "HTTPS (SigV4)",
                "TLS",
                "over the link to interface endpoints: " + ", ".join(others),
                "credentials exchange, secrets, keys and logs as used on-prem",
            )
        )
    if facts.dns_forward:
        rows.append(
            DataPath(
                "router VPC → on-prem DNS",
                "DNS (UDP/TCP 53) via Route 53 Resolver outbound endpoint",
                "none (names only)",
                f"over the link; forwarded domain {facts.dns_forward}",
                "host names queried, no request data",
            )
        )
    if facts.inbound_dns:
        rows.append(
            DataPath(
                "on-prem DNS → VPC resolver",
                "DNS (UDP/TCP 53) to the Route 53 Resolver inbound endpoint",
                "none (names only)",
                "over the link",
                "AWS endpoint names, so they resolve to private addresses",
            )
        )
    rows += _capture_rows(templates)
    rows.append(
        DataPath(
            "operator on-prem → S3 artifact bucket (`make upload`)",
            "HTTPS PutObject (SigV4)",
            "TLS; objects under the artifact bucket's KMS key",
            "S3 public endpoint (no S3 interface endpoint is built)",
            "model weights, no customer data",
        )
    )
    return rows


def _capture_rows(templates: dict[str, Template]) -> list[DataPath]:
    """Data capture stores what reaches the endpoint: a reviewer must see that cloud-bound requests are kept."""
    rows = []
    for t in templates.values():
        for p in _resources(t, "AWS::SageMaker::EndpointConfig").values():
            capture = p.get("DataCaptureConfig")
            if capture and capture.get("EnableCapture", True):
                kinds = " and ".join(o["CaptureMode"].lower() for o in capture.get("CaptureOptions", []))
                rows.append(
                    DataPath(
                        "SageMaker endpoint → S3 data capture",
                        "SageMaker-managed capture",
                        "KMS key " + ("(customer-managed)" if capture.get("KmsKeyId") else "(S3 default)"),
                        "AWS internal",
                        f"{capture.get('InitialSamplingPercentage')}% of cloud-bound requests ({kinds}) kept in S3",
                    )
                )
    return rows


def network_cost_lines(cfg: DeploymentConfig) -> list[str]:
    """Monthly fixed cost of the private path, by part, from the config (what the reviewer pays for privacy)."""
    net = cfg.network
    if not net.enabled:
        return []
    azs = 2 if net.mode == "create" else len(net.subnet_ids)
    parts = [("interface endpoints", len(net.interface_endpoints) * azs * USD_PER_HOUR["interface_endpoint_az"])]
    if net.link.type == "vpn":
        parts.append(("site-to-site VPN connection", USD_PER_HOUR["vpn_connection"]))
    if net.link.transit_gateway:
        parts.append(("transit gateway attachment", USD_PER_HOUR["tgw_attachment"]))
    resolvers = int(net.inbound_resolver) + int(net.dns_forward is not None)
    if resolvers:
        parts.append(
            (f"{resolvers} Route 53 Resolver endpoint(s)", resolvers * azs * USD_PER_HOUR["resolver_endpoint_ip"])
        )
    total = sum(hourly for _, hourly in parts) * HOURS_PER_MONTH
    detail = ", ".join(f"{name} ${hourly * HOURS_PER_MONTH:,.0f}" for name, hourly in parts)
    return [
        f"Private path: ~${total:,.0f} per month fixed ({detail}); us-east-1 list prices, data processing and "
        "transfer extra (Direct Connect ports are billed to their owner)."
    ]


def data_paths_section(cfg: DeploymentConfig, assembly: Path) -> list[str]:
    """Markdown lines for REVIEW.md: the data-path table and the private-path overrides in force."""
    templates = {
        p.name.removesuffix(".template.json"): json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(assembly.glob("*.template.json"))
    }
    rows = data_paths(cfg, templates)
    out = ["## Data paths between the premises and AWS", ""]
    if not rows:
        return [*out, "- The hybrid router is not deployed: no data path between the premises and AWS.", ""]
    out += ["| path | protocol | encryption | network | data |", "|---|---|---|---|---|"]
    out += [f"| {p.path} | {p.protocol} | {p.encryption} | {p.network} | {p.data} |" for p in rows]
    out += ["", *[f"- {line}" for line in network_cost_lines(cfg)]]
    out += ["", "### Private-path overrides", ""]
    out += [f"- `{o.rule}` — {o.reason}" for o in cfg.network.overrides] or ["- none"]
    return [*out, ""]
