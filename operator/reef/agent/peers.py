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

import ipaddress
from collections.abc import Iterable, Mapping
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


@dataclass
class _Member:
    agent: MeshAgent
    key: Key
    addresses: tuple[IPNetwork, ...]
    extras: tuple[IPNetwork, ...]
    endpoint: Endpoint | None
    problem: str | None = None


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
    if _is_ip_literal(host):
        return Endpoint.parse(text)
    address = resolved.get(host.lower())
    if address is None:
        raise ValueError(f"endpoint host {host!r} does not resolve")
    return Endpoint(address, port)


def _host_network(text: str) -> IPNetwork:
    address = ipaddress.ip_address(text)
    return ipaddress.ip_network(f"{address}/{address.max_prefixlen}")


def _read_member(
    agent: MeshAgent, resolved: Mapping[str, IPAddress | None]
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
    return _Member(agent, key, addresses, extras, endpoint)


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


def _claim(
    member: _Member,
    networks: Iterable[IPNetwork],
    claims: list[tuple[IPNetwork, str]],
    what: str,
) -> None:
    """Claim ``networks`` for ``member`` unless one overlaps an earlier claim."""
    wanted = list(networks)
    for net in wanted:
        for held, owner in claims:
            if owner != member.agent.name and net.version == held.version and net.overlaps(held):
                member.problem = f"{what} {net} overlaps {held} of {owner}"
                return
    claims.extend((net, member.agent.name) for net in wanted)


def plan_peers(
    me: MeshAgent,
    my_public_key: Key,
    members: Iterable[MeshAgent],
    network: MeshNetworkSpec,
    resolved: Mapping[str, IPAddress | None] | None = None,
) -> PeerSetPlan:
    """The peer set of ``me``'s device (see the module docstring for the rules)."""
    resolved = resolved or {}
    live = sorted(
        (m for m in members if m.metadata.deletion_timestamp is None and m.name != me.name),
        key=_order,
    )
    skipped: list[SkippedPeer] = []
    pending: list[str] = []
    accepted: list[_Member] = []
    early: list[_Member] = []
    keys_seen: dict[Key, str] = {my_public_key: me.name}
    for agent in live:
        parsed = _read_member(agent, resolved)
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

    # Everyone (this node included) is ordered the same way on every node, so every
    # node reaches the same verdict on a collision.
    mine = _read_member(me, resolved)
    everyone = sorted(
        [*accepted, *([mine] if isinstance(mine, _Member) else [])], key=lambda m: _order(m.agent)
    )
    claims: list[tuple[IPNetwork, str]] = []
    for member in everyone:
        _claim(member, member.addresses, claims, "address")
    for member in everyone:
        if member.problem is None:
            _claim(member, member.extras, claims, "extraAllowedIPs")

    self_problem = mine.problem if isinstance(mine, _Member) else None
    for member in accepted:
        if member.problem is not None:
            skipped.append(SkippedPeer(member.agent.name, member.problem))
    usable = [m for m in accepted if m.problem is None]

    keepalive = network.persistent_keepalive
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
    peers = tuple(
        PeerSpec(
            public_key=m.key,
            allowed_ips=tuple(allowed[m.agent.name]),
            endpoint=m.endpoint,
            persistent_keepalive=keepalive,
        )
        for m in chosen
    ) + tuple(
        PeerSpec(public_key=m.key, endpoint=m.endpoint, persistent_keepalive=keepalive)
        for m in joining
    )
    return PeerSetPlan(
        peers=peers,
        names={m.key: m.agent.name for m in chosen},
        skipped=tuple(sorted(skipped, key=lambda s: s.name)),
        pending=tuple(sorted(pending)),
        forwarding=forwarding,
        self_problem=self_problem,
    )
