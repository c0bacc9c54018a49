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
import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reef.api.kinds import Role, Topology
from reef.api.records import MeshAgent, MeshNetworkSpec
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


@dataclass(slots=True)
class _Member:
    """One member as peer planning reads it: its key, addresses, routes, endpoint."""

    agent: MeshAgent
    key: Key
    addresses: tuple[IPNetwork, ...]
    extras: tuple[IPNetwork, ...]
    endpoint: Endpoint | None
    problem: str | None = None
    refused: tuple[str, ...] = ()
    name: str = field(init=False)  # agent.name, read often: a property call costs more

    def __post_init__(self) -> None:
        self.name = self.agent.name


# Parsed values by their text, shared between plans: an agent reads every member again
# when its own spec, the network or a resolved name changes, and the texts rarely do.
# The values are immutable. Bounded: past that many distinct texts the oldest are parsed
# again (a 10000-member mesh has about 10000 of each kind).
_CACHED_TEXTS = 16384


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


# A dotted quad as ipaddress accepts it (decimal octets 0..255, no leading zeros): the
# common case, read without ipaddress' string parser, which was a third of a whole plan at
# 5000 members. Anything else goes to ipaddress, to be accepted or refused as before.
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(r"\.".join([_OCTET] * 4))


def _dotted_quad(text: str) -> int | None:
    """The IPv4 address ``text`` as an integer; None when it is not a plain dotted quad."""
    match = _DOTTED_QUAD.fullmatch(text)
    if match is None:
        return None
    a, b, c, d = map(int, match.groups())
    return a << 24 | b << 16 | c << 8 | d


def _ip_literal(host: str) -> IPAddress:
    """``host`` (a zone index dropped) as an address; ValueError when it is none."""
    text = host.partition("%")[0]
    if (value := _dotted_quad(text)) is not None:
        return ipaddress.IPv4Address(value)
    return ipaddress.ip_address(text)


def _is_ip_literal(host: str) -> bool:
    try:
        _ip_literal(host)
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


@functools.lru_cache(maxsize=_CACHED_TEXTS)
def _literal_endpoint(text: str) -> Endpoint | None:
    """``text`` as an endpoint when its host is an IP literal; None when it is a name;
    ValueError when malformed."""
    host, port = split_endpoint(text)
    try:
        address = _ip_literal(host)
    except ValueError:
        return None
    return Endpoint(address, port)


def _endpoint(text: str, resolved: Mapping[str, IPAddress | None]) -> Endpoint | None:
    if not text:
        return None  # a NATed member: it reaches us, its keepalives keep the path open
    if (literal := _literal_endpoint(text)) is not None:
        return literal
    host, port = split_endpoint(text)
    address = resolved.get(host.lower())
    if address is None:
        raise ValueError(f"endpoint host {host!r} does not resolve")
    return Endpoint(address, port)


def _host_network(text: str) -> IPNetwork:
    """An address as its host route; ValueError for anything but a bare address."""
    if (value := _dotted_quad(text)) is not None:
        return ipaddress.IPv4Network(value)  # an integer is a /32
    if "/" in text:
        raise ValueError(f"{text!r} is not an address")
    return ipaddress.ip_network(text)  # a bare address is its own /32 or /128


@functools.lru_cache(maxsize=_CACHED_TEXTS)
def _host_routes(texts: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """A member's ``status.addresses`` as host routes; ValueError when one is no address."""
    return tuple(map(_host_network, texts))


@functools.lru_cache(maxsize=_CACHED_TEXTS)
def _extra_networks(texts: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """A member's ``extraAllowedIPs`` (host bits allowed); ValueError when one is no prefix."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


_public_key = functools.lru_cache(maxsize=_CACHED_TEXTS)(Key.from_base64)


def forget_parsed_texts() -> None:
    """Empty the caches of parsed texts (a benchmark measuring a plan from nothing)."""
    for cache in (_literal_endpoint, _host_routes, _extra_networks, _public_key):
        cache.cache_clear()


def _read_member(
    agent: MeshAgent, resolved: Mapping[str, IPAddress | None], routes: RoutePolicy
) -> _Member | SkippedPeer | None:
    """Parse one member; None means pending (no address yet)."""
    spec = agent.spec
    try:
        key = _public_key(spec.public_key)
    except InvalidKeyError as error:
        return SkippedPeer(agent.name, f"public key unusable: {error}")
    if not (texts := agent.status.addresses):
        return None
    try:
        addresses = _host_routes(texts)
    except ValueError as error:
        return SkippedPeer(agent.name, f"status.addresses unusable: {error}")
    try:
        extras = _extra_networks(spec.extra_allowed_ips) if spec.extra_allowed_ips else ()
    except ValueError as error:
        return SkippedPeer(agent.name, f"extraAllowedIPs unusable: {error}")
    try:
        endpoint = _endpoint(spec.endpoint, resolved)
    except ValueError as error:
        return SkippedPeer(agent.name, f"endpoint unusable: {error}")
    if not extras:  # most members: nothing to check against the route policy
        return _Member(agent, key, addresses, (), endpoint)
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
        key = _public_key(agent.spec.public_key)
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
            keys_seen[m.key] = m.name
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
        # IP version -> address (an integer: cheaper to hash than an ipaddress object) -> owner
        self._hosts: dict[int, dict[int, str]] = {4: {}, 6: {}}
        self._sorted: dict[int, list[int]] = {}  # the addresses of each version, sorted
        self._extras: dict[tuple[int, int, int], tuple[IPNetwork, str]] = {}
        self._extra_starts: dict[int, list[tuple[int, int, str, IPNetwork]]] = {4: [], 6: []}

    def claim_addresses(self, member: _Member) -> None:
        """Claim the member's addresses unless another member holds one already."""
        name = member.name
        if len(member.addresses) == 1:  # the common case, one dictionary operation
            net = member.addresses[0]
            holder = self._hosts[net.version].setdefault(int(net.network_address), name)
            if holder != name:
                member.problem = f"address {net} overlaps {net} of {holder}"
            return
        for net in member.addresses:
            owner = self._hosts[net.version].get(int(net.network_address))
            if owner is not None and owner != name:
                member.problem = f"address {net} overlaps {net} of {owner}"
                return
        for net in member.addresses:
            self._hosts[net.version][int(net.network_address)] = name

    def claim_extras(self, member: _Member) -> None:
        """After every address is claimed: the member's extras, unless one overlaps
        another member's address or an earlier member's extra."""
        if not member.extras:
            return
        if not self._sorted:
            self._sorted = {version: sorted(hosts) for version, hosts in self._hosts.items()}
        name = member.name
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
        hosts, owners = self._sorted[net.version], self._hosts[net.version]
        last = int(net.broadcast_address)
        index = bisect.bisect_left(hosts, int(net.network_address))
        while index < len(hosts) and hosts[index] <= last:
            address = hosts[index]
            if (owner := owners[address]) != name:
                return ipaddress.ip_network((address, net.max_prefixlen)), owner
            index += 1
        return None


def _decide_collisions(ordered: list[_Member], mine: _Member | None) -> None:
    """Set ``problem`` on every member whose allowed IPs collide with an older one's:
    addresses first (they win over extras), then extras, oldest first (every node
    orders members the same way, so every node reaches the same verdict). ``ordered``:
    the other members, already in that order; ``mine``: this node's own."""
    everyone = list(ordered)
    if mine is not None:  # after any equal (their names differ from this node's)
        bisect.insort(everyone, mine, key=lambda m: _order(m.agent))
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


def _allowed(member: _Member) -> tuple[IPNetwork, ...]:
    """A member's own allowed IPs (its addresses' tuple itself when it has no extras)."""
    return member.addresses + member.extras if member.extras else member.addresses


def _peer_specs(
    chosen: list[_Member],
    joining: list[_Member],
    carried: Mapping[str, tuple[IPNetwork, ...]],
    own_keepalive: int | None,
    network: MeshNetworkSpec,
) -> tuple[PeerSpec, ...]:
    """The peers; ``carried``: allowed IPs of a peer that carries more than its own."""
    default = network.persistent_keepalive

    def keepalive(member: _Member) -> int:
        theirs = member.agent.spec.persistent_keepalive
        if own_keepalive is None and theirs is None:
            return default  # most tunnels: no override at either end
        return tunnel_keepalive(own_keepalive, theirs, default)

    return tuple(
        PeerSpec(
            public_key=m.key,
            allowed_ips=carried[m.name] if m.name in carried else _allowed(m),
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
    _decide_collisions(accepted, mine if isinstance(mine, _Member) else None)

    self_problem = mine.problem if isinstance(mine, _Member) else None
    for member in accepted:
        if member.problem is not None:
            skipped.append(SkippedPeer(member.name, member.problem))
    usable = [m for m in accepted if m.problem is None]

    own_keepalive = me.spec.persistent_keepalive
    carried: dict[str, tuple[IPNetwork, ...]] = {}
    forwarding = False
    if network.topology is Topology.HUB:
        hubs = [m for m in usable if m.agent.spec.role is Role.HUB]
        if me.spec.role is Role.HUB:
            chosen = usable
            forwarding = True
        else:
            chosen = hubs
            if hubs:
                via = list(_allowed(hubs[0]))
                for member in usable:
                    if member.agent.spec.role is not Role.HUB:
                        via.extend(_allowed(member))
                carried[hubs[0].name] = tuple(via)
    else:
        chosen = usable
    joining = _early_peers(me, early, network, keys_seen)
    if self_problem is not None:
        # Every other node skips us (same verdict everywhere): peering one-sidedly would
        # only leak half-open sessions. Fix the spec and the node rejoins.
        chosen, forwarding, joining = [], False, []
    peers = _peer_specs(chosen, joining, carried, own_keepalive, network)
    return PeerSetPlan(
        peers=peers,
        names={m.key: m.name for m in chosen},
        skipped=tuple(sorted(skipped, key=lambda s: s.name)),
        pending=tuple(sorted(pending)),
        forwarding=forwarding,
        self_problem=self_problem,
        refused_routes=mine.refused if isinstance(mine, _Member) else (),
    )
