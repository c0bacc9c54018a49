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
from collections.abc import Callable, Iterable
from typing import Any

from reef.dataplane.netlink import IPRoute, NetlinkError
from reef.dataplane.plain_netlink import RouteKey, network_of, route_key, route_keys_via
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


#: Reads the destinations of the routes via an interface (its index) with a protocol
#: number: :func:`reef.dataplane.plain_netlink.route_keys_via`, a dump per family read
#: without pyroute2's message objects (at 5000 routes those were 20 MiB at once).
RouteReader = Callable[[int, int], set[RouteKey]]


class RouteSync:
    """Keeps exactly the wanted routes via one interface, writing only what changed.

    The first sync (and the first after :meth:`forget`) reads the live routes and
    addresses from the kernel; later syncs diff against what this object last wrote,
    so a peer joining costs one route write and no dump. The dump is what used to
    scale with the mesh: every agent re-read all its routes on every change of any
    member. Whoever changes the interface behind our back (an admin, a restart) is
    caught by the next :meth:`forget` — the backends call it whenever they
    (re)configure the interface, which the agent's periodic resync does.
    """

    def __init__(self, read_routes: RouteReader = route_keys_via) -> None:
        self._read_routes = read_routes
        self._index: int | None = None
        self._on_link: set[IPInterface] = set()
        self._routes: set[IPNetwork] = set()

    def forget(self) -> None:
        """Make the next sync read the kernel's routes again instead of trusting memory."""
        self._index = None

    def sync(self, ipr: IPRoute, index: int, networks: Iterable[IPNetwork]) -> None:
        """Route exactly ``networks`` (minus those already on-link) via the interface.

        Only routes carrying :data:`REEF_ROUTE_PROTO` are removed, so connected
        routes and anything an operator added by hand survive.
        """
        wanted = set(networks)
        if self._index != index:
            self._read(ipr, index, wanted)
        try:
            self._write(ipr, index, wanted)
        except NetlinkError:
            # Memory and kernel disagree (a route removed or added behind our back):
            # read the truth once and write the difference from there.
            self._read(ipr, index, wanted)
            self._write(ipr, index, wanted)

    def _read(self, ipr: IPRoute, index: int, wanted: set[IPNetwork]) -> None:
        self._index = None  # until the read succeeded
        self._on_link = live_addresses(ipr, index)
        read = self._read_routes(index, REEF_ROUTE_PROTO)
        # Known routes are the caller's network objects (the plan's, shared), found by
        # key; only routes nobody wants become objects (for _write to remove). Parsing
        # all 5000 into networks held 2.5 MiB until the next read, and left the agent's
        # resident memory a step higher after every periodic resync (issue 10).
        routes = set()
        for net in wanted:
            key = route_key(net)
            if key in read:
                routes.add(net)
                read.discard(key)
        self._routes = routes | {network_of(key) for key in read}
        self._index = index

    def _write(self, ipr: IPRoute, index: int, networks: set[IPNetwork]) -> None:
        wanted = {net for net in networks if not _covered(net, self._on_link)}
        for net in sorted(wanted - self._routes, key=str):
            ipr.route("replace", dst=str(net), oif=index, proto=REEF_ROUTE_PROTO, scope=_scope(net))
            self._routes.add(net)
        for net in sorted(self._routes - wanted, key=str):
            # The scope must be given: pyroute2 otherwise sends "universe" and the kernel
            # finds no matching route (ESRCH).
            ipr.route("del", dst=str(net), oif=index, proto=REEF_ROUTE_PROTO, scope=_scope(net))
            self._routes.discard(net)


def delete_link(ipr: IPRoute, ifname: str) -> bool:
    """Delete the interface if it exists; return whether it did."""
    index = link_index(ipr, ifname)
    if index is None:
        return False
    ipr.link("del", index=index)
    return True
