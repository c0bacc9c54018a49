"""Which ``host:port`` this node asks its peers to reach it at (pure).

An admin who knows better than the node (a public IP, a NAT, another cloud) says so on
the **Node object**, which the agent reads but a MeshAgent edit could not survive (the
agent owns ``spec.endpoint`` and rewrites it from what it knows):

- ``mesh.reef.dev/endpoint``: ``host:port``, ``[v6]:port`` or just ``host`` (the
  network's listen port is added). Taken as it is.
- ``mesh.reef.dev/endpoint-family``: ``IPv4`` or ``IPv6``: use the node's address of
  that family (dual-stack nodes list one per family in ``status.hostIPs``).

Without annotations: ``REEF_ENDPOINT`` (one value for every node of the DaemonSet),
else the node's primary address (downward API ``status.hostIP``), else the first of
``status.hostIPs`` / the InternalIP in ``status.addresses``; no address at all means
an empty endpoint (a NATed member: peers learn it from its packets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENDPOINT_ANNOTATION = "mesh.reef.dev/endpoint"
FAMILY_ANNOTATION = "mesh.reef.dev/endpoint-family"
_FAMILIES = {"IPv4": 4, "IPv6": 6}


@dataclass(frozen=True, slots=True)
class EndpointChoice:
    """The endpoint this node announces, and why that one."""

    endpoint: str
    #: Where it came from, for the log: annotation, family, setting, node-ip, node, none.
    source: str
    #: A sentence for an Event when an annotation could not be used; None when fine.
    problem: str | None = None


def _join(host: str, port: int) -> str:
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        version = 4  # a DNS name
    return f"[{host}]:{port}" if version == 6 else f"{host}:{port}"


def _override(text: str, port: int) -> str:
    """The annotation's value as ``host:port``; ValueError when it is not usable."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        ipaddress.IPv6Address(host)
        if not rest:
            return _join(host, port)
        if not rest.startswith(":") or not 0 < int(rest[1:]) < 65536:
            raise ValueError("expected [IPv6]:port")
        return text
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        pass
    else:
        return _join(text, port)  # a bare IPv6 address
    host, sep, port_text = text.partition(":")
    if not host or " " in host or "/" in host:
        raise ValueError("expected host, host:port or [IPv6]:port")
    if not sep:
        return _join(host, port)
    if not 0 < int(port_text) < 65536:
        raise ValueError("port must be 1..65535")
    return text


def node_addresses(node: Mapping[str, Any] | None) -> list[str]:
    """The node's own IPs, primary first: ``status.hostIPs``, then InternalIP/ExternalIP."""
    status = (node or {}).get("status") or {}
    found = [str(item.get("ip", "")) for item in status.get("hostIPs") or []]
    for kind in ("InternalIP", "ExternalIP"):
        found += [
            str(item.get("address", ""))
            for item in status.get("addresses") or []
            if item.get("type") == kind
        ]
    unique: list[str] = []
    for address in found:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            continue
        if address not in unique:
            unique.append(address)
    return unique


def choose_endpoint(
    node: Mapping[str, Any] | None,
    listen_port: int,
    configured: str | None = None,
    node_ip: str | None = None,
) -> EndpointChoice:
    annotations = ((node or {}).get("metadata") or {}).get("annotations") or {}
    problem = None
    if text := annotations.get(ENDPOINT_ANNOTATION):
        try:
            return EndpointChoice(_override(text, listen_port), "annotation")
        except ValueError as error:
            problem = (
                f"annotation {ENDPOINT_ANNOTATION}={text!r} is not usable ({error});"
                " ignored until it is fixed"
            )
    if family := annotations.get(FAMILY_ANNOTATION):
        version = _FAMILIES.get(family)
        candidates = [a for a in node_addresses(node) if ipaddress.ip_address(a).version == version]
        if version is None:
            problem = f"annotation {FAMILY_ANNOTATION}={family!r} is not IPv4 or IPv6; ignored"
        elif not candidates:
            problem = (
                f"annotation {FAMILY_ANNOTATION}={family} asks for an {family} endpoint, but the"
                " Node lists no such address in status.hostIPs/addresses; ignored"
            )
        else:
            return EndpointChoice(_join(candidates[0], listen_port), "family", problem)
    if configured:
        return EndpointChoice(configured, "setting", problem)
    if node_ip:
        return EndpointChoice(_join(node_ip, listen_port), "node-ip", problem)
    if found := node_addresses(node):
        return EndpointChoice(_join(found[0], listen_port), "node", problem)
    return EndpointChoice("", "none", problem)
