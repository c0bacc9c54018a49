"""A wg-quick(8) configuration for a member outside the cluster (pure).

The peers are exactly those a reef agent on that host would configure: the same pure
planner (:func:`reef.agent.peers.plan_peers`) decides them, so topology, allowed IPs,
collisions and keepalive follow one set of rules whether a host runs ``reef agent`` or
only wireguard-tools. Every peer gets the network's keepalive, so a host behind NAT
keeps its mapping open and the in-cluster members can answer it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from reef.agent.peers import PeerSetPlan
from reef.dataplane import Key

PRIVATE_KEY_PLACEHOLDER = "<the private key in the file reef join wrote>"


def host_interface(address: str) -> str:
    """``100.64.0.5`` → ``100.64.0.5/32`` (``/128`` for IPv6): routes come from the peers."""
    parsed = ipaddress.ip_address(address)
    return f"{parsed}/{parsed.max_prefixlen}"


def render_wg_quick(
    *,
    name: str,
    network: str,
    private_key: Key | None,
    addresses: tuple[str, ...],
    listen_port: int | None,
    mtu: int | None,
    plan: PeerSetPlan,
    names: Mapping[Key, str] | None = None,
) -> str:
    """The config text; ``private_key=None`` writes a placeholder instead of the key."""
    names = names if names is not None else plan.names
    lines = [
        f"# reef member {name} of MeshNetwork {network}; written by `reef join`/`reef showconf`.",
        "# Bring it up with: wg-quick up ./<this file>  (the file name is the interface name)",
        "[Interface]",
        f"PrivateKey = {private_key.base64() if private_key else PRIVATE_KEY_PLACEHOLDER}",
        f"Address = {', '.join(host_interface(a) for a in addresses)}",
    ]
    if listen_port:
        lines.append(f"ListenPort = {listen_port}")
    if mtu:
        lines.append(f"MTU = {mtu}")
    for peer in plan.peers:
        if not peer.allowed_ips:
            # A member still waiting for its address: an agent pre-adds it so its first
            # handshake is answered; a static file would keep it without addresses forever.
            continue
        lines.append("")
        lines.append(f"# {names.get(peer.public_key, 'member')}")
        lines.append("[Peer]")
        lines.append(f"PublicKey = {peer.public_key.base64()}")
        lines.append(f"AllowedIPs = {', '.join(str(n) for n in peer.allowed_ips)}")
        if peer.endpoint is not None:
            lines.append(f"Endpoint = {peer.endpoint}")
        if peer.persistent_keepalive:
            lines.append(f"PersistentKeepalive = {peer.persistent_keepalive}")
    for skipped in plan.skipped:
        lines.append("")
        lines.append(f"# skipped {skipped.name}: {skipped.reason}")
    for pending in plan.pending:
        lines.append(f"# not yet included {pending}: it has no address yet")
    return "\n".join(lines) + "\n"
