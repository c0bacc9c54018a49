"""Which peers this node's WireGuard device should have: a pure function of the API.

Input: the network's members (MeshAgents), this node's name and public key, the
MeshNetwork spec, and the answers of name resolution for endpoint host names (done by
the caller: resolving is I/O). Output: the desired :class:`PeerSpec` list plus the
members that were *skipped* (garbage: a key or endpoint that cannot be used, allowed
IPs that collide) and those *pending* (no address yet). No I/O, so it is
property-tested (tests/agent/test_peer_planning.py).

Rules:

- Allowed IPs of a peer = its permanent addresses as host routes (/32, /128) plus its
  ``extraAllowedIPs``. Host routes, not the pool prefix, so every peer gets its own
  route and nothing depends on the order peers were added.
- An ``extraAllowedIPs`` prefix is routed only inside the MeshNetwork's
  ``routablePrefixes`` (the admin's allowlist; empty = none), and never when it overlaps
  the pool or the cluster's own ranges (``status.clusterPrefixes``: service and pod
  CIDRs). A refused prefix is dropped alone — the member keeps its addresses and its
  other prefixes — and the member's own agent says why (:attr:`PeerSetPlan.refused_routes`).
  Admission refuses such prefixes already; this is the defence in depth for what
  admission cannot see (an allowlist narrowed later, a policy turned off).
- Keepalive of a tunnel: a member's ``spec.persistentKeepalive`` (admin-owned) overrides
  the network's; when both ends set one, the shorter non-zero interval wins (0 only when
  both say 0). Both ends compute the same value.
- Allowed IPs must never overlap between peers: WireGuard silently moves a duplicate
  to whichever peer was configured last. Conflicts are resolved the same way on every
  node: addresses (allocated by the operator, unique by construction) win over
  ``extraAllowedIPs``; between extras, the older member (creationTimestamp, then name)
  wins. The loser is skipped entirely and reported, never half-configured.
- ``FullMesh``: everyone peers with everyone. ``Hub``: hubs peer with every member;
  a spoke peers only with hubs, and the first hub (same order) also carries the other
  spokes' allowed IPs, so spoke-to-spoke traffic goes *through* that hub. The hub must
  forward between its peers (:attr:`PeerSetPlan.forwarding`).
- Terminating members (deletionTimestamp set) are already gone from the mesh.
- A registered member still waiting for its address is already a peer — its key and
  endpoint, no allowed IPs yet — so its first handshake, sent the moment its interface
  is up, meets a peer that knows its key (else WireGuard retries only after 5 s). It
  carries no traffic until its address arrives and is not counted in peer health.
- A node whose *own* spec loses a collision has no peers (every other node skips it);
  the plan says why in :attr:`PeerSetPlan.self_problem`.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reef.api.models import MeshAgent, MeshNetworkSpec, Role, Topology
from reef.dataplane import Endpoint, InvalidKeyError, Key, PeerSpec
from reef.dataplane.spec import IPAddress, IPNetwork

_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SkippedPeer:
    """A member left out of the device, and a sentence saying why."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerSetPlan:
    """The desired peers, who they are, and who was left out."""

    peers: tuple[PeerSpec, ...] = ()
    names: Mapping[Key, str] = field(default_factory=dict)
    skipped: tuple[SkippedPeer, ...] = ()
    pending: tuple[str, ...] = ()
    forwarding: bool = False
    #: Set when this node's own spec collides (others skip it); None when fine.
    self_problem: str | None = None
    #: This node's own extraAllowedIPs that no node routes, each with the reason.
    refused_routes: tuple[str, ...] = ()


@dataclass
class _Member:
    agent: MeshAgent
    key: Key
    addresses: tuple[IPNetwork, ...]
    extras: tuple[IPNetwork, ...]
    endpoint: Endpoint | None
    problem: str | None = None
    refused: tuple[str, ...] = ()


def split_endpoint(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into host and port; ValueError when malformed."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"endpoint {text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"endpoint {text!r} has port {port}, expected 1..65535")
    return host, port


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def endpoint_hostnames(members: Iterable[MeshAgent]) -> set[str]:
    """Endpoint hosts that are names, not IP literals: the caller resolves these."""
    names = set()
    for member in members:
        if not member.spec.endpoint:
            continue
        try:
            host, _ = split_endpoint(member.spec.endpoint)
        except ValueError:
            continue
        if not _is_ip_literal(host):
            names.add(host.lower())
    return names


def _endpoint(text: str, resolved: Mapping[str, IPAddress | None]) -> Endpoint | None:
    if not text:
        return None  # a NATed member: it reaches us, its keepalives keep the path open
    host, port = split_endpoint(text)
    try:  # an IP literal (parsed once: at 5000 members address parsing dominates a plan)
        return Endpoint(ipaddress.ip_address(host.partition("%")[0]), port)
    except ValueError:
        pass
    address = resolved.get(host.lower())
    if address is None:
        raise ValueError(f"endpoint host {host!r} does not resolve")
    return Endpoint(address, port)


def _host_network(text: str) -> IPNetwork:
    """An address as its host route; ValueError for anything but a bare address."""
    if "/" in text:
        raise ValueError(f"{text!r} is not an address")
    return ipaddress.ip_network(text)  # a bare address is its own /32 or /128


def _read_member(
    agent: MeshAgent, resolved: Mapping[str, IPAddress | None], routes: RoutePolicy
) -> _Member | SkippedPeer | None:
    """Parse one member; None means pending (no address yet)."""
    try:
        key = Key.from_base64(agent.spec.public_key)
    except InvalidKeyError as error:
        return SkippedPeer(agent.name, f"public key unusable: {error}")
    if not agent.status.addresses:
        return None
    try:
        addresses = tuple(_host_network(text) for text in agent.status.addresses)
    except ValueError as error:
        return SkippedPeer(agent.name, f"status.addresses unusable: {error}")
    try:
        extras = tuple(ipaddress.ip_network(t, strict=False) for t in agent.spec.extra_allowed_ips)
    except ValueError as error:
        return SkippedPeer(agent.name, f"extraAllowedIPs unusable: {error}")
    try:
        endpoint = _endpoint(agent.spec.endpoint, resolved)
    except ValueError as error:
        return SkippedPeer(agent.name, f"endpoint unusable: {error}")
    routed, refused = routes.split(extras)
    return _Member(agent, key, addresses, routed, endpoint, refused=refused)


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """Which extra prefixes a member may have routed to it."""

    allowed: tuple[IPNetwork, ...] = ()
    #: The pool and the cluster's own ranges: never routed to a member.
    reserved: tuple[tuple[IPNetwork, str], ...] = ()

    @classmethod
    def of(cls, network: MeshNetworkSpec, cluster: Iterable[IPNetwork] = ()) -> RoutePolicy:
        reserved = [(net, "the pool") for net in network.networks]
        reserved += [(net, "the cluster's own range") for net in cluster]
        return cls(network.routable_networks, tuple(reserved))

    def refusal(self, net: IPNetwork) -> str | None:
        """Why ``net`` is not routed (None: it is)."""
        for held, what in self.reserved:
            if held.version == net.version and held.overlaps(net):
                return f"{net} overlaps {what} {held}"
        inside = (a.version == net.version and net.subnet_of(a) for a in self.allowed)  # type: ignore[arg-type]
        if not any(inside):
            listed = ", ".join(map(str, self.allowed)) or "none"
            return f"{net} is outside the MeshNetwork's routablePrefixes [{listed}]"
        return None

    def split(self, nets: Iterable[IPNetwork]) -> tuple[tuple[IPNetwork, ...], tuple[str, ...]]:
        """(routed, refusals) of ``nets``."""
        kept: list[IPNetwork] = []
        refused: list[str] = []
        for net in nets:
            reason = self.refusal(net)
            if reason is None:
                kept.append(net)
            else:
                refused.append(reason)
        return tuple(kept), tuple(refused)


def tunnel_keepalive(a: int | None, b: int | None, network: int) -> int:
    """Keepalive between two members with overrides ``a`` and ``b`` (None: not set)."""
    overrides = [v for v in (a, b) if v is not None]
    if not overrides:
        return network
    running = [v for v in overrides if v > 0]
    return min(running) if running else 0


def _read_joining(agent: MeshAgent, resolved: Mapping[str, IPAddress | None]) -> _Member | None:
    """A member without an address yet, as an early peer (key and endpoint); None if unusable."""
    try:
        key = Key.from_base64(agent.spec.public_key)
        endpoint = _endpoint(agent.spec.endpoint, resolved)
    except (InvalidKeyError, ValueError):
        return None  # reported once it has an address and is planned for real
    return _Member(agent, key, (), (), endpoint)


def _early_peers(
    me: MeshAgent, early: Iterable[_Member], network: MeshNetworkSpec, keys_seen: dict[Key, str]
) -> list[_Member]:
    """Joining members this node will peer with (topology), each key once."""
    joining = []
    for m in early:
        wanted_here = (
            network.topology is not Topology.HUB
            or me.spec.role is Role.HUB
            or m.agent.spec.role is Role.HUB
        )
        if wanted_here and m.key not in keys_seen:
            keys_seen[m.key] = m.agent.name
            joining.append(m)
    return joining


def _order(agent: MeshAgent) -> tuple[datetime, str]:
    return (agent.metadata.creation_timestamp or _FAR_FUTURE, agent.name)


def cidr_span(net: IPNetwork) -> tuple[int, int, int]:
    """(version, first address, last address) of ``net`` as integers."""
    return net.version, int(net.network_address), int(net.broadcast_address)


def supernet_keys(net: IPNetwork) -> Iterator[tuple[int, int, int]]:
    """(version, first address, prefix length) of ``net`` and of every network holding it:
    at most 33 (IPv4) or 129 (IPv6) keys, so "is it inside a known prefix" is that many
    dictionary lookups, whatever the number of prefixes known."""
    start, bits = int(net.network_address), net.max_prefixlen
    for length in range(net.prefixlen + 1):
        mask = ((1 << length) - 1) << (bits - length)
        yield net.version, start & mask, length


class _Claims:
    """Who holds which allowed IPs, so a plan costs O(n log n) in the mesh size, not a
    comparison of every pair (at 5000 members that pairwise scan took 15 s of CPU per
    plan on every node). Addresses are host routes: address against address is a
    dictionary lookup, extra against address a binary search. CIDR prefixes either nest
    or are disjoint, so an extra overlaps a claimed extra when that one holds it (one
    lookup per prefix length) or starts inside it (a binary search)."""

    def __init__(self) -> None:
        self._hosts: dict[IPNetwork, str] = {}
        self._sorted: dict[int, list[tuple[int, str]]] = {}
        self._extras: dict[tuple[int, int, int], tuple[IPNetwork, str]] = {}
        self._extra_starts: dict[int, list[tuple[int, int, str, IPNetwork]]] = {4: [], 6: []}

    def claim_addresses(self, member: _Member) -> None:
        """Claim the member's addresses unless another member holds one already."""
        name = member.agent.name
        for net in member.addresses:
            owner = self._hosts.get(net)
            if owner is not None and owner != name:
                member.problem = f"address {net} overlaps {net} of {owner}"
                return
        self._hosts.update((net, name) for net in member.addresses)

    def claim_extras(self, member: _Member) -> None:
        """After every address is claimed: the member's extras, unless one overlaps
        another member's address or an earlier member's extra."""
        if not self._sorted:
            for version in (4, 6):
                self._sorted[version] = sorted(
                    (int(net.network_address), owner)
                    for net, owner in self._hosts.items()
                    if net.version == version
                )
        name = member.agent.name
        for net in member.extras:
            held = self._address_in(net, name) or self._extra_overlapping(net, name)
            if held is not None:
                member.problem = f"extraAllowedIPs {net} overlaps {held[0]} of {held[1]}"
                return
        for net in member.extras:
            version, first, _ = cidr_span(net)
            self._extras.setdefault((version, first, net.prefixlen), (net, name))
            bisect.insort(self._extra_starts[version], (first, net.prefixlen, name, net))

    def _extra_overlapping(self, net: IPNetwork, name: str) -> tuple[IPNetwork, str] | None:
        for key in supernet_keys(net):
            held = self._extras.get(key)
            if held is not None and held[1] != name:
                return held
        version, first, last = cidr_span(net)
        starts = self._extra_starts[version]
        index = bisect.bisect_left(starts, (first,))
        while index < len(starts) and starts[index][0] <= last:
            _, _, owner, other = starts[index]
            if owner != name:
                return other, owner
            index += 1
        return None

    def _address_in(self, net: IPNetwork, name: str) -> tuple[IPNetwork, str] | None:
        hosts = self._sorted[net.version]
        last = int(net.broadcast_address)
        index = bisect.bisect_left(hosts, (int(net.network_address), ""))
        while index < len(hosts) and hosts[index][0] <= last:
            address, owner = hosts[index]
            if owner != name:
                return ipaddress.ip_network((address, net.max_prefixlen)), owner
            index += 1
        return None


def _decide_collisions(members: Iterable[_Member]) -> None:
    """Set ``problem`` on every member whose allowed IPs collide with an older one's:
    addresses first (they win over extras), then extras, oldest first (every node
    orders members the same way, so every node reaches the same verdict)."""
    everyone = sorted(members, key=lambda m: _order(m.agent))
    claims = _Claims()
    for member in everyone:
        member.problem = None
        claims.claim_addresses(member)
    for member in everyone:
        if member.problem is None:
            claims.claim_extras(member)


def _classify(
    live: Iterable[MeshAgent],
    resolved: Mapping[str, IPAddress | None],
    routes: RoutePolicy,
    keys_seen: dict[Key, str],
) -> tuple[list[_Member], list[SkippedPeer], list[str], list[_Member]]:
    """Members with an address (accepted), skipped ones, pending ones, and pending ones
    that already registered a key (early peers); records each accepted key."""
    skipped: list[SkippedPeer] = []
    pending: list[str] = []
    accepted: list[_Member] = []
    early: list[_Member] = []
    for agent in live:
        parsed = _read_member(agent, resolved, routes)
        if parsed is None:
            pending.append(agent.name)
            if (early_peer := _read_joining(agent, resolved)) is not None:
                early.append(early_peer)
        elif isinstance(parsed, SkippedPeer):
            skipped.append(parsed)
        elif (holder := keys_seen.get(parsed.key)) is not None:
            skipped.append(SkippedPeer(agent.name, f"public key is also used by {holder}"))
        else:
            keys_seen[parsed.key] = agent.name
            accepted.append(parsed)
    return accepted, skipped, pending, early


def _peer_specs(
    chosen: list[_Member],
    joining: list[_Member],
    allowed: Mapping[str, list[IPNetwork]],
    own_keepalive: int | None,
    network: MeshNetworkSpec,
) -> tuple[PeerSpec, ...]:
    def keepalive(member: _Member) -> int:
        return tunnel_keepalive(
            own_keepalive, member.agent.spec.persistent_keepalive, network.persistent_keepalive
        )

    return tuple(
        PeerSpec(
            public_key=m.key,
            allowed_ips=tuple(allowed[m.agent.name]),
            endpoint=m.endpoint,
            persistent_keepalive=keepalive(m),
        )
        for m in chosen
    ) + tuple(
        # A registered member still waiting for its address: its key and endpoint only, so
        # its first handshake is answered at once (no allowed IPs until it has an address).
        PeerSpec(public_key=m.key, endpoint=m.endpoint, persistent_keepalive=keepalive(m))
        for m in joining
    )


def plan_peers(
    me: MeshAgent,
    my_public_key: Key,
    members: Iterable[MeshAgent],
    network: MeshNetworkSpec,
    resolved: Mapping[str, IPAddress | None] | None = None,
    *,
    cluster_prefixes: Iterable[IPNetwork] = (),
) -> PeerSetPlan:
    """The peer set of ``me``'s device (see the module docstring for the rules)."""
    resolved = resolved or {}
    routes = RoutePolicy.of(network, cluster_prefixes)
    live = sorted(
        (m for m in members if m.metadata.deletion_timestamp is None and m.name != me.name),
        key=_order,
    )
    keys_seen: dict[Key, str] = {my_public_key: me.name}
    accepted, skipped, pending, early = _classify(live, resolved, routes, keys_seen)

    # Everyone (this node included) is ordered the same way on every node, so every
    # node reaches the same verdict on a collision.
    mine = _read_member(me, resolved, routes)
    _decide_collisions([*accepted, *([mine] if isinstance(mine, _Member) else [])])

    self_problem = mine.problem if isinstance(mine, _Member) else None
    for member in accepted:
        if member.problem is not None:
            skipped.append(SkippedPeer(member.agent.name, member.problem))
    usable = [m for m in accepted if m.problem is None]

    own_keepalive = me.spec.persistent_keepalive
    allowed: dict[str, list[IPNetwork]] = {m.agent.name: [*m.addresses, *m.extras] for m in usable}
    forwarding = False
    if network.topology is Topology.HUB:
        hubs = [m for m in usable if m.agent.spec.role is Role.HUB]
        if me.spec.role is Role.HUB:
            chosen = usable
            forwarding = True
        else:
            chosen = hubs
            if hubs:
                via = allowed[hubs[0].agent.name]
                for member in usable:
                    if member.agent.spec.role is not Role.HUB:
                        via.extend(allowed[member.agent.name])
    else:
        chosen = usable
    joining = _early_peers(me, early, network, keys_seen)
    if self_problem is not None:
        # Every other node skips us (same verdict everywhere): peering one-sidedly would
        # only leak half-open sessions. Fix the spec and the node rejoins.
        chosen, forwarding, joining = [], False, []
    peers = _peer_specs(chosen, joining, allowed, own_keepalive, network)
    return PeerSetPlan(
        peers=peers,
        names={m.key: m.agent.name for m in chosen},
        skipped=tuple(sorted(skipped, key=lambda s: s.name)),
        pending=tuple(sorted(pending)),
        forwarding=forwarding,
        self_problem=self_problem,
        refused_routes=mine.refused if isinstance(mine, _Member) else (),
    )
