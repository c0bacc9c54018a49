"""Addresses, MTU, link state and routes of a WireGuard interface, via pyroute2.

Both backends share this: the kernel creates its device through netlink and
wireguard-go creates a TUN, but either way the IP side is plain rtnetlink.

"One step" (DESIGN §4.4): the permanent address is added before anything
stale is removed and nothing is flushed, so a re-run on a working interface
changes nothing and a re-addressed one never passes through a state without
its address. Routes for peers' allowed IPs carry reef's own protocol number
so that resyncing them never touches routes somebody else installed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from reef.dataplane.netlink import IPRoute
from reef.dataplane.spec import IPInterface, IPNetwork

# rtnetlink "proto" marking routes reef installed (unassigned in rt_protos).
REEF_ROUTE_PROTO = 82
_SCOPE_LINK = 253
_IFF_UP = 0x1


class LinkError(RuntimeError):
    """The interface is missing or rtnetlink refused a change."""


def link_index(ipr: IPRoute, ifname: str) -> int | None:
    found: list[int] = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def require_index(ipr: IPRoute, ifname: str) -> int:
    index = link_index(ipr, ifname)
    if index is None:
        raise LinkError(f"interface {ifname} does not exist")
    return index


def link_kind(ipr: IPRoute, index: int) -> str | None:
    (link,) = ipr.link("get", index=index)
    info: Any = link.get("IFLA_LINKINFO")
    if info is None:
        return None
    kind: str | None = info.get("IFLA_INFO_KIND")
    return kind


def live_addresses(ipr: IPRoute, index: int) -> set[IPInterface]:
    return {
        ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
        for msg in ipr.get_addr(index=index)
    }


def configure_link(ipr: IPRoute, index: int, addresses: Iterable[IPInterface], mtu: int) -> None:
    """Make the link carry exactly ``addresses``, have ``mtu`` and be up.

    Idempotent: only differences are written. Missing addresses are added
    before stale ones are removed (never a moment without the permanent one).
    IPv6 link-local addresses the kernel generates are left alone.
    """
    wanted = set(addresses)
    live = live_addresses(ipr, index)
    for addr in sorted(wanted - live, key=str):
        ipr.addr("add", index=index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
    for addr in sorted(live - wanted, key=str):
        if addr.version == 6 and addr.ip.is_link_local:
            continue
        ipr.addr("del", index=index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
    (link,) = ipr.link("get", index=index)
    changes: dict[str, Any] = {}
    if link.get("IFLA_MTU") != mtu:
        changes["mtu"] = mtu
    if not link["flags"] & _IFF_UP:
        changes["state"] = "up"
    if changes:
        ipr.link("set", index=index, **changes)


def _covered(net: IPNetwork, on_link: Iterable[IPInterface]) -> bool:
    """True when an address of the interface already routes ``net`` on-link."""
    return any(
        net.version == addr.version and net.subnet_of(addr.network)  # type: ignore[arg-type]
        for addr in on_link
    )


def _scope(net: IPNetwork) -> int:
    # IPv4 routes via a point-to-point device are link-scoped; IPv6 has no such scope.
    return _SCOPE_LINK if net.version == 4 else 0


def sync_routes(ipr: IPRoute, index: int, networks: Iterable[IPNetwork]) -> None:
    """Route exactly ``networks`` (minus those already on-link) via the interface.

    Only routes carrying :data:`REEF_ROUTE_PROTO` are removed, so connected
    routes and anything an operator added by hand survive.
    """
    on_link = live_addresses(ipr, index)
    wanted = {net for net in networks if not _covered(net, on_link)}
    live: set[IPNetwork] = set()
    for family in (2, 10):  # AF_INET, AF_INET6
        for route in ipr.get_routes(family=family, oif=index, proto=REEF_ROUTE_PROTO):
            dst = route.get("RTA_DST") or ("0.0.0.0" if family == 2 else "::")
            live.add(ipaddress.ip_network(f"{dst}/{route['dst_len']}"))
    for net in sorted(wanted - live, key=str):
        ipr.route("replace", dst=str(net), oif=index, proto=REEF_ROUTE_PROTO, scope=_scope(net))
    for net in sorted(live - wanted, key=str):
        # The scope must be given: pyroute2 otherwise sends "universe" and the kernel
        # finds no matching route (ESRCH).
        ipr.route("del", dst=str(net), oif=index, proto=REEF_ROUTE_PROTO, scope=_scope(net))


def delete_link(ipr: IPRoute, ifname: str) -> bool:
    """Delete the interface if it exists; return whether it did."""
    index = link_index(ipr, ifname)
    if index is None:
        return False
    ipr.link("del", index=index)
    return True
