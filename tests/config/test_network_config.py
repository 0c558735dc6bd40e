"""The ``network:`` section: prod-like environments get a private, encrypted router path or a reasoned override."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError, load_config
from config.loader import parse_config
from config.network_section import gateway_port, is_prod_like

REPO = Path(__file__).resolve().parents[2]
REASON = "Pilot only until 2027-03-31; accepted by the CISO (ticket SEC-4411)."


@pytest.fixture
def prod() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "config" / "prod.yaml").read_text(encoding="utf-8"))
    return data


def bad(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "prod.yaml")
    return str(info.value)


def without_network(prod: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(prod)
    del data["network"]
    return data


def test_shipped_prod_builds_the_private_path() -> None:
    net = load_config("prod").network
    assert net.mode == "create" and net.link.type == "vpn" and net.link.vpn is not None
    assert net.gateway_tls.pin_ca and net.gateway_tls.mutual_tls
    assert {"sagemaker_runtime", "secretsmanager", "kms", "logs"} <= set(net.interface_endpoints)
    assert load_config("prod").router.local_url.startswith("https://")
    assert load_config("dev").network.mode == "none"  # dev is not prod-like: no link needed


def test_prod_refuses_http_gateway_url(prod: dict[str, Any]) -> None:
    prod["router"]["local_url"] = "http://10.0.5.10:8080"
    prod["network"]["gateway_tls"] = {}
    msg = bad(prod)
    assert "prod.yaml: router.local_url: 'http://10.0.5.10:8080' is plain http" in msg
    assert "rule: http_local_url" in msg


def test_prod_refuses_router_outside_vpc(prod: dict[str, Any]) -> None:
    msg = bad(without_network(prod))
    assert "prod.yaml: network.mode: the router would reach the gateway over the public internet" in msg
    assert "rule: router_outside_vpc" in msg


def test_prod_refuses_both_and_says_both(prod: dict[str, Any]) -> None:
    data = without_network(prod)
    data["router"]["local_url"] = "http://gateway.bank.internal"
    msg = bad(data)
    assert "is plain http" in msg and "over the public internet" in msg


def test_reasoned_overrides_are_accepted(prod: dict[str, Any]) -> None:
    data = without_network(prod)
    data["router"]["local_url"] = "http://gateway.bank.internal"
    data["network"] = {
        "overrides": [{"rule": "http_local_url", "reason": REASON}, {"rule": "router_outside_vpc", "reason": REASON}]
    }
    cfg = parse_config(data)
    assert [o.rule for o in cfg.network.overrides] == ["http_local_url", "router_outside_vpc"]


def test_override_needs_a_real_reason(prod: dict[str, Any]) -> None:
    data = without_network(prod)
    data["network"] = {"overrides": [{"rule": "router_outside_vpc", "reason": "because"}]}
    assert "network.overrides.0.reason" in bad(data) and "at least 30 characters" in bad(data)


def test_unused_override_is_refused(prod: dict[str, Any]) -> None:
    prod["network"]["overrides"] = [{"rule": "http_local_url", "reason": REASON}]
    assert "network.overrides: 'http_local_url' overrides nothing here" in bad(prod)


def test_unknown_override_rule_lists_allowed(prod: dict[str, Any]) -> None:
    prod["network"]["overrides"] = [{"rule": "no_tls", "reason": REASON}]
    msg = bad(prod)
    assert "network.overrides.0.rule" in msg and "'http_local_url' or 'router_outside_vpc'" in msg


def test_prod_likeness_by_name_and_by_flag(prod: dict[str, Any]) -> None:
    net = load_config("dev").network
    assert is_prod_like("prod", net) and is_prod_like("prod-eu", net) and is_prod_like("staging", net)
    assert not is_prod_like("dev", net) and not is_prod_like("producer-test", net)
    # A dev-named environment can opt in, and then the same refusals apply.
    data = without_network(prod)
    data["environment"] = "dev"
    data["network"] = {"enforce_private_path": True}
    assert "over the public internet" in bad(data)
    data["network"] = {"enforce_private_path": False}
    assert parse_config(data).network.mode == "none"
    # A prod-like name cannot switch the rules off: only a reasoned override lifts one.
    data["environment"] = "prod"
    assert "over the public internet" in bad(data)


def test_disabled_router_needs_no_private_path_and_gets_none(prod: dict[str, Any]) -> None:
    data = without_network(prod)
    data["router"]["enabled"] = False
    assert parse_config(data).router.enabled is False
    prod["router"]["enabled"] = False
    assert "network.mode: the private path is built with the hybrid stack, which is off" in bad(prod)


def test_router_vpc_counts_as_private_but_not_together_with_network(prod: dict[str, Any]) -> None:
    data = without_network(prod)
    data["router"]["vpc"] = {"subnet_ids": ["subnet-0123456789abcdef0"], "security_group_ids": ["sg-0123456789abcdef0"]}
    assert parse_config(data).router.vpc.enabled
    prod["router"]["vpc"] = data["router"]["vpc"]
    assert "router.vpc: the router is placed in network's subnets" in bad(prod)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"onprem_cidrs": ["0.0.0.0/0"]}, "network.onprem_cidrs: '0.0.0.0/0' is everything"),
        ({"gateway_cidrs": ["10.0.5.10/24"]}, "network.gateway_cidrs: '10.0.5.10/24' is not an IPv4"),
        ({"gateway_cidrs": ["192.168.1.5/32"]}, "network.gateway_cidrs: 192.168.1.5/32 is not inside onprem_cidrs"),
        ({"gateway_cidrs": []}, "network.gateway_cidrs: name the on-prem gateway's addresses"),
        ({"onprem_cidrs": ["10.0.0.0/16", "10.30.0.0/20"]}, "network.onprem_cidrs: 10.30.0.0/20 overlaps the VPC cidr"),
        ({"cidr": "10.0.0.0/8"}, "network.cidr: 10.0.0.0/8: a VPC CIDR must be /16 to /24"),
        ({"cidr": "10.30.0.0/8"}, "network.cidr: '10.30.0.0/8' is not an IPv4 network with its host bits zero"),
        ({"interface_endpoints": ["kms", "logs"]}, "the router needs sagemaker_runtime, secretsmanager"),
        ({"interface_endpoints": ["kms", "kms"]}, "network.interface_endpoints: lists a service twice"),
        ({"link": {"type": "none"}}, "network.link.type: a new VPC has no route to the premises"),
        ({"link": {"type": "existing"}}, "network.link.type: a new VPC has no route to the premises"),
        ({"link": {"type": "vpn"}}, "network.link.vpn: required when type is 'vpn'"),
        ({"link": {"type": "direct_connect"}}, "network.link.direct_connect_gateway_id: required"),
        ({"link": {"type": "transit_gateway"}}, "network.link.transit_gateway_id: required"),
        ({"vpc_id": "vpc-0123456789abcdef0"}, "network.vpc_id: only for mode 'existing'"),
    ],
)
def test_network_refusals(prod: dict[str, Any], change: dict[str, Any], expected: str) -> None:
    prod["network"].update(change)
    assert expected in bad(prod)


@pytest.mark.parametrize(
    ("vpn", "expected"),
    [
        ({"customer_gateway_ip": "10.1.2.3"}, "customer_gateway_ip: 10.1.2.3 is not a public address"),
        ({"customer_gateway_ip": "not-an-ip"}, "'not-an-ip' is not an IPv4 address"),
        ({"customer_gateway_ip": "203.0.113.10", "customer_gateway_asn": 7224}, "7224 is reserved by AWS"),
        ({"customer_gateway_ip": "203.0.113.10", "attach": "transit_gateway"}, "transit_gateway_id: required"),
    ],
)
def test_vpn_refusals(prod: dict[str, Any], vpn: dict[str, Any], expected: str) -> None:
    prod["network"]["link"]["vpn"] = vpn
    assert expected in bad(prod)


def test_static_routes_on_a_transit_gateway_are_refused(prod: dict[str, Any]) -> None:
    prod["network"]["link"]["transit_gateway_id"] = "tgw-0123456789abcdef0"
    prod["network"]["link"]["vpn"]["attach"] = "transit_gateway"
    assert "network.link.vpn.routing: use 'bgp' with a transit gateway" in bad(prod)
    prod["network"]["link"]["vpn"]["routing"] = "bgp"
    assert parse_config(prod).network.link.transit_gateway


def test_existing_vpc_needs_ids_routes_and_a_link(prod: dict[str, Any]) -> None:
    net = prod["network"]
    net.update(mode="existing", vpc_id="vpc-0123456789abcdef0")
    assert "network.subnet_ids: give at least 2 private subnets" in bad(prod)
    net["subnet_ids"] = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    assert "network.availability_zones: give one AZ per subnet id" in bad(prod)
    net["availability_zones"] = ["us-east-1a", "us-east-1b"]
    assert "network.route_table_ids: required to add routes for link.type 'vpn'" in bad(prod)
    net["route_table_ids"] = ["rtb-0123456789abcdef0"]
    assert parse_config(prod).network.mode == "existing"
    net["link"] = {"type": "existing"}
    net["route_table_ids"] = []
    assert parse_config(prod).network.link.type == "existing"


def test_mode_none_takes_no_link_settings(prod: dict[str, Any]) -> None:
    prod["network"]["mode"] = "none"
    assert "network.mode: 'none' builds no network" in bad(prod)


def test_tls_pinning_needs_https_and_ip_hosts_must_be_the_gateway(prod: dict[str, Any]) -> None:
    prod["router"]["local_url"] = "http://10.0.5.10:8080"
    prod["network"]["overrides"] = [{"rule": "http_local_url", "reason": REASON}]
    assert "network.gateway_tls: CA pinning and mutual TLS need an https://" in bad(prod)
    prod["router"]["local_url"] = "https://10.0.9.9:8443"
    prod["network"]["overrides"] = []
    assert "router.local_url: host 10.0.9.9 is not inside network.gateway_cidrs" in bad(prod)
    prod["router"]["local_url"] = "https://10.0.5.11:8443"
    assert parse_config(prod).router.local_url == "https://10.0.5.11:8443"


def test_dns_forward_must_cover_the_gateway_and_use_onprem_servers(prod: dict[str, Any]) -> None:
    prod["router"]["local_url"] = "https://llm-gateway.corp.example:8443"
    assert "router.local_url: host llm-gateway.corp.example is outside network.dns_forward.domain" in bad(prod)
    prod["router"]["local_url"] = "https://bank.internal"
    prod["network"]["dns_forward"]["servers"] = ["8.8.8.8"]
    assert "network.dns_forward.servers: 8.8.8.8 is not inside onprem_cidrs" in bad(prod)


def test_gateway_port_from_url() -> None:
    assert gateway_port("https://gw.bank.internal:8443") == 8443
    assert gateway_port("https://gw.bank.internal") == 443
    assert gateway_port("http://gw.bank.internal") == 80
