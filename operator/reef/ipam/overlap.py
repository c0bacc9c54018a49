"""Does a pool collide with a range the cluster already uses? (pure)

Traffic to an address inside the mesh pool is routed into the WireGuard interface; a
pool that overlaps the Service range, a node's pod CIDR, a node's own address or
another MeshNetwork's pool therefore blackholes that traffic. The caller gathers the
ranges in use (ServiceCIDR objects, Nodes, MeshNetworks) with their owners; this
module only compares.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Overlap:
    pool: str
    range: str
    #: Who uses the range, e.g. "ServiceCIDR kubernetes", "Node n1 (podCIDR)".
    owner: str

    def sentence(self) -> str:
        return f"pool {self.pool} overlaps {self.range} of {self.owner}"


@dataclass(frozen=True, slots=True)
class UsedRange:
    range: str
    owner: str


def _network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def ranges_of_nodes(nodes: Iterable[Mapping[str, Any]]) -> list[UsedRange]:
    """Pod CIDRs and InternalIP/ExternalIP addresses of Node objects."""
    used = []
    for node in nodes:
        name = node["metadata"]["name"]
        spec = node.get("spec") or {}
        for cidr in spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []):
            used.append(UsedRange(cidr, f"Node {name} (podCIDR)"))
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") in ("InternalIP", "ExternalIP"):
                used.append(UsedRange(address["address"], f"Node {name} ({address['type']})"))
    return used


def ranges_of_service_cidrs(items: Iterable[Mapping[str, Any]]) -> list[UsedRange]:
    return [
        UsedRange(cidr, f"ServiceCIDR {item['metadata']['name']} (Service range)")
        for item in items
        for cidr in (item.get("spec") or {}).get("cidrs") or []
    ]


def ranges_of_networks(networks: Iterable[Mapping[str, Any]], but: str) -> list[UsedRange]:
    return [
        UsedRange(cidr, f"MeshNetwork {body['metadata']['name']}")
        for body in networks
        if body["metadata"]["name"] != but and not body["metadata"].get("deletionTimestamp")
        for cidr in (body.get("spec") or {}).get("cidrs") or []
    ]


def find_overlaps(pools: Sequence[str], used: Iterable[UsedRange]) -> list[Overlap]:
    found = []
    parsed = [(p, n) for p in pools if (n := _network(p)) is not None]
    for item in used:
        other = _network(item.range)
        if other is None:
            continue
        for text, pool in parsed:
            if pool.version == other.version and pool.overlaps(other):
                found.append(Overlap(text, item.range, item.owner))
    return found
