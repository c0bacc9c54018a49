"""Peer planning kept current one member at a time: the same plan as
:func:`reef.agent.peers.plan_peers`, at a cost per change independent of the mesh size.

Every member's status write used to cost every agent a parse of all members and a
whole plan (0.2 s at 5000 members, on every node, for every change). Here:

- each MeshAgent is parsed once per ``resourceVersion`` and read (key, host routes,
  routed extras, endpoint) once per change of it or of the context (this node, the
  network spec, the resolved endpoint names, the cluster's ranges);
- a changed member that shares nothing with any other member — no public key, no
  address, no overlapping extra prefix, found in an index of dictionaries and sorted
  lists in O(log n) — cannot change anyone else's verdict, so only its own outcome is
  replaced. When it does share something (a collision: garbage, rare), the verdicts of
  all members are decided again from the cached reads, as a full plan does;
- a plan asked for with nothing changed is the previous plan (health ticks, our own
  status writes).

Assembling the result copies the current peers into a tuple (C speed, tens of µs at
5000). In a Hub topology a spoke's first hub carries every spoke's allowed IPs, so a
spoke assembles that peer in O(n) after each change.

Peer order in :attr:`PeerSetPlan.peers` carries no meaning (the device diffs by key).
tests/agent/test_peer_planner.py checks the plan equals the full plan after random
sequences of adds, updates and deletes.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from reef.agent.peers import (
    PeerSetPlan,
    RoutePolicy,
    SkippedPeer,
    _decide_collisions,
    _Member,
    _order,
    _read_joining,
    _read_member,
    cidr_span,
    endpoint_hostnames,
    supernet_keys,
    tunnel_keepalive,
)
from reef.api.kinds import Role, Topology
from reef.api.records import MeshAgent, MeshNetworkSpec, read_mesh_agent
from reef.dataplane import Key, PeerSpec
from reef.dataplane.spec import IPAddress, IPNetwork
from reef.multimap import Holders, add_holder, discard_holder, held_by_others

Body = dict[str, Any]


@dataclass(slots=True)
class _Read:
    """One live member under the current context, before any collision is decided."""

    agent: MeshAgent
    member: _Member | None = None  # has an address and parsed
    skipped: SkippedPeer | None = None  # unusable on its own
    early: _Member | None = None  # pending (no address yet), with a usable key

    @property
    def key(self) -> Key | None:
        held = self.member or self.early
        return held.key if held is not None else None


def _read(agent: MeshAgent, resolved: Mapping[str, IPAddress | None], routes: RoutePolicy) -> _Read:
    parsed = _read_member(agent, resolved, routes)
    if parsed is None:
        return _Read(agent, early=_read_joining(agent, resolved))
    if isinstance(parsed, SkippedPeer):
        return _Read(agent, skipped=parsed)
    return _Read(agent, member=parsed)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while every member is parsed or read: those objects live
    on, so each pass would only walk them (and all else alive) to find them alive. At
    5000 members the passes were half the time of an agent's first plan."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _planning_view(agent: MeshAgent) -> tuple[Any, ...]:
    """What of this node's own MeshAgent planning reads (not its health status)."""
    spec = agent.spec
    return (
        agent.name,
        agent.metadata.creation_timestamp,
        spec.public_key,
        spec.endpoint,
        tuple(spec.extra_allowed_ips),
        spec.role,
        spec.persistent_keepalive,
        tuple(agent.status.addresses),
    )


class _Overlaps:
    """Every key, address and routed extra of every member (winners and losers alike),
    so "does this member share anything with another one" is O(log n)."""

    def __init__(self) -> None:
        self._keys: dict[Key, Holders] = {}
        self._hosts: dict[tuple[int, int], Holders] = {}
        self._host_starts: dict[int, list[tuple[int, str]]] = {4: [], 6: []}
        self._extras: dict[tuple[int, int, int], Holders] = {}
        self._extra_starts: dict[int, list[tuple[int, str]]] = {4: [], 6: []}

    def add(self, name: str, key: Key | None, member: _Member | None) -> None:
        if key is not None:
            add_holder(self._keys, key, name)
        if member is None:
            return
        for net in member.addresses:
            version, first, _ = cidr_span(net)
            add_holder(self._hosts, (version, first), name)
            bisect.insort(self._host_starts[version], (first, name))
        for net in member.extras:
            version, first, _ = cidr_span(net)
            add_holder(self._extras, (version, first, net.prefixlen), name)
            bisect.insort(self._extra_starts[version], (first, name))

    def remove(self, name: str, key: Key | None, member: _Member | None) -> None:
        if key is not None:
            discard_holder(self._keys, key, name)
        if member is None:
            return
        for net in member.addresses:
            version, first, _ = cidr_span(net)
            discard_holder(self._hosts, (version, first), name)
            _remove_sorted(self._host_starts[version], (first, name))
        for net in member.extras:
            version, first, _ = cidr_span(net)
            discard_holder(self._extras, (version, first, net.prefixlen), name)
            _remove_sorted(self._extra_starts[version], (first, name))

    def shared(self, name: str, key: Key | None, member: _Member | None) -> bool:
        """Whether another member holds the same key, the same address, or a prefix
        overlapping one of ``member``'s addresses or extras."""
        if key is not None and held_by_others(self._keys.get(key), name):
            return True
        if member is None:
            return False
        for net in member.addresses:
            version, first, _ = cidr_span(net)
            if held_by_others(self._hosts.get((version, first)), name):
                return True
            if self._inside_extra(net, name):
                return True
        for net in member.extras:
            if self._inside_extra(net, name):
                return True
            version, first, last = cidr_span(net)
            if _starts_within(self._extra_starts[version], first, last, name):
                return True
            if _starts_within(self._host_starts[version], first, last, name):
                return True
        return False

    def _inside_extra(self, net: IPNetwork, name: str) -> bool:
        return any(held_by_others(self._extras.get(key), name) for key in supernet_keys(net))


def _remove_sorted(entries: list[tuple[int, str]], entry: tuple[int, str]) -> None:
    position = bisect.bisect_left(entries, entry)
    if position < len(entries) and entries[position] == entry:
        del entries[position]


def _starts_within(entries: list[tuple[int, str]], first: int, last: int, name: str) -> bool:
    position = bisect.bisect_left(entries, (first, ""))  # "" sorts before every name
    while position < len(entries) and entries[position][0] <= last:
        if entries[position][1] != name:
            return True
        position += 1
    return False


@dataclass(frozen=True, slots=True)
class _Context:
    """Everything besides the members that a read or a verdict depends on."""

    me: tuple[Any, ...]
    my_key: Key
    network: MeshNetworkSpec
    resolved: tuple[tuple[str, IPAddress | None], ...]
    cluster: tuple[IPNetwork, ...]


class PeerPlanner:
    """The plan of one node, fed member changes as they come (see the module docstring)."""

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[str, MeshAgent]] = {}  # name -> (resourceVersion, agent)
        self._dirty: set[str] = set()
        self._hostnames: dict[str, str] = {}  # member -> its endpoint host, when a name
        self._context: _Context | None = None
        self._routes = RoutePolicy()
        self._resolved: Mapping[str, IPAddress | None] = {}
        self._me: MeshAgent | None = None
        self._mine: _Member | SkippedPeer | None = None
        self._reads: dict[str, _Read] = {}
        self._index = _Overlaps()
        # Outcomes, each member in exactly one of usable / skipped / pending.
        self._usable: dict[str, _Member] = {}
        self._specs: dict[str, PeerSpec] = {}  # usable and joining members' peers
        self._names: dict[Key, str] = {}  # usable members by key
        self._names_copy: dict[Key, str] | None = None  # handed out; None: to copy again
        self._skipped: dict[str, SkippedPeer] = {}
        self._pending: set[str] = set()
        self._joining: dict[str, _Member] = {}
        self._self_problem: str | None = None
        self._plan: PeerSetPlan | None = None

    # --- input ---------------------------------------------------------------------

    def set_member(self, name: str, member: Body | MeshAgent | None) -> None:
        """A member as the informer has it now (None: gone): a body, parsed once per
        version, or the record the informer made of it (kept as it is: the cache and the
        planner then share it)."""
        if member is None:
            self._hostnames.pop(name, None)
            if self._parsed.pop(name, None) is not None:
                self._dirty.add(name)
            return
        if isinstance(member, MeshAgent):
            version = member.metadata.resource_version
        else:
            version = member.get("metadata", {}).get("resourceVersion", "")
        cached = self._parsed.get(name)
        if cached is not None and version and cached[0] == version:
            return
        agent = member if isinstance(member, MeshAgent) else read_mesh_agent(member)
        self._parsed[name] = (version, agent)
        self._dirty.add(name)
        self._hostnames.pop(name, None)
        for host in endpoint_hostnames((agent,)):
            self._hostnames[name] = host

    def set_members(self, members: Mapping[str, Body | MeshAgent]) -> None:
        """All members at once (after a list): the missing ones are gone."""
        for name in [n for n in self._parsed if n not in members]:
            self.set_member(name, None)
        with _collector_paused():
            for name, member in members.items():
                self.set_member(name, member)

    def endpoint_hostnames(self) -> set[str]:
        """Endpoint hosts that are names (the caller resolves them before :meth:`plan`)."""
        return set(self._hostnames.values())

    # --- output --------------------------------------------------------------------

    def plan(
        self,
        me: MeshAgent,
        my_public_key: Key,
        network: MeshNetworkSpec,
        resolved: Mapping[str, IPAddress | None] | None = None,
        *,
        cluster_prefixes: tuple[IPNetwork, ...] = (),
    ) -> PeerSetPlan:
        """What :func:`~reef.agent.peers.plan_peers` returns for the members set so far."""
        resolved = dict(resolved or {})
        context = _Context(
            _planning_view(me),
            my_public_key,
            network,
            tuple(sorted(resolved.items(), key=lambda item: item[0])),
            tuple(cluster_prefixes),
        )
        if context != self._context:
            self._context, self._me, self._resolved = context, me, resolved
            self._routes = RoutePolicy.of(network, cluster_prefixes)
            self._dirty.clear()
            self._read_everyone()
        elif self._dirty:
            self._apply_changes()
        elif self._plan is not None:
            return self._plan
        self._plan = self._assemble()
        return self._plan

    # --- work ----------------------------------------------------------------------

    def _live(self, name: str) -> MeshAgent | None:
        cached = self._parsed.get(name)
        assert self._me is not None
        if cached is None or name == self._me.name or cached[1].metadata.deletion_timestamp:
            return None
        return cached[1]

    def _read_everyone(self) -> None:
        assert self._me is not None
        assert self._context is not None
        self._index = _Overlaps()
        self._reads = {}
        with _collector_paused():
            for name in self._parsed:
                if (agent := self._live(name)) is not None:
                    read = _read(agent, self._resolved, self._routes)
                    self._reads[name] = read
                    self._index.add(name, read.key, read.member)
        self._mine = _read_member(self._me, self._resolved, self._routes)
        mine = self._mine if isinstance(self._mine, _Member) else None
        self._index.add(self._me.name, self._context.my_key, mine)
        self._decide_everyone()

    def _apply_changes(self) -> None:
        """Re-read the changed members; decide again only when one shares something."""
        collided = False
        changed: list[str] = []
        dirty = list(self._dirty)
        keys_before = {n: self._usable[n].key for n in dirty if n in self._usable}
        for name in dirty:
            old = self._reads.pop(name, None)
            if old is not None:
                collided |= self._index.shared(name, old.key, old.member)
                self._index.remove(name, old.key, old.member)
            if (agent := self._live(name)) is not None:
                read = _read(agent, self._resolved, self._routes)
                self._reads[name] = read
                self._index.add(name, read.key, read.member)
                changed.append(name)
            self._forget_outcome(name)
        self._dirty.clear()
        collided |= any(
            self._index.shared(name, self._reads[name].key, self._reads[name].member)
            for name in changed
        )
        if collided:
            self._decide_everyone()
            return
        for name in changed:  # alone: its verdict is its own read
            read = self._reads[name]
            if read.member is not None:
                read.member.problem = None
                self._set_usable(read.member)
            elif read.skipped is not None:
                self._skipped[name] = read.skipped
            else:
                self._pending.add(name)
                if read.early is not None and self._wanted_early(read.early):
                    self._set_joining(read.early)
        if keys_before != {n: self._usable[n].key for n in dirty if n in self._usable}:
            self._names_copy = None  # the usable members by key changed

    def _decide_everyone(self) -> None:
        """The verdict of every member from the cached reads, in the full plan's order."""
        assert self._me is not None
        assert self._context is not None
        self._usable, self._specs, self._names, self._skipped = {}, {}, {}, {}
        self._names_copy = None
        self._pending, self._joining = set(), {}
        keys_seen: dict[Key, str] = {self._context.my_key: self._me.name}
        accepted: list[_Member] = []
        early: list[_Member] = []
        for read in sorted(self._reads.values(), key=lambda r: _order(r.agent)):
            name = read.agent.name
            if read.member is not None:
                read.member.problem = None
                if (holder := keys_seen.get(read.member.key)) is not None:
                    self._skipped[name] = SkippedPeer(name, f"public key is also used by {holder}")
                else:
                    keys_seen[read.member.key] = name
                    accepted.append(read.member)
            elif read.skipped is not None:
                self._skipped[name] = read.skipped
            else:
                self._pending.add(name)
                if read.early is not None:
                    early.append(read.early)
        mine = self._mine if isinstance(self._mine, _Member) else None
        _decide_collisions(accepted, mine)
        self._self_problem = mine.problem if mine is not None else None
        for member in accepted:
            if member.problem is not None:
                self._skipped[member.name] = SkippedPeer(member.name, member.problem)
            else:
                self._set_usable(member)
        for member in early:
            if self._wanted_early(member) and member.key not in keys_seen:
                keys_seen[member.key] = member.name
                self._set_joining(member)

    def _forget_outcome(self, name: str) -> None:
        if (usable := self._usable.pop(name, None)) is not None:
            del self._names[usable.key]
        self._specs.pop(name, None)
        self._skipped.pop(name, None)
        self._pending.discard(name)
        self._joining.pop(name, None)

    def _wanted_early(self, member: _Member) -> bool:
        assert self._context is not None
        assert self._me is not None
        return (
            self._context.network.topology is not Topology.HUB
            or self._me.spec.role is Role.HUB
            or member.agent.spec.role is Role.HUB
        )

    def _keepalive(self, member: _Member) -> int:
        assert self._me is not None
        assert self._context is not None
        return tunnel_keepalive(
            self._me.spec.persistent_keepalive,
            member.agent.spec.persistent_keepalive,
            self._context.network.persistent_keepalive,
        )

    def _set_usable(self, member: _Member) -> None:
        self._usable[member.name] = member
        self._names[member.key] = member.name
        self._specs[member.name] = PeerSpec(
            public_key=member.key,
            allowed_ips=(*member.addresses, *member.extras),
            endpoint=member.endpoint,
            persistent_keepalive=self._keepalive(member),
        )

    def _set_joining(self, member: _Member) -> None:
        # Its key and endpoint only: its first handshake is answered at once.
        self._joining[member.name] = member
        self._specs[member.name] = PeerSpec(
            public_key=member.key,
            endpoint=member.endpoint,
            persistent_keepalive=self._keepalive(member),
        )

    def _assemble(self) -> PeerSetPlan:
        assert self._me is not None
        assert self._context is not None
        mine = self._mine
        refused = mine.refused if isinstance(mine, _Member) else ()
        skipped = tuple(sorted(self._skipped.values(), key=lambda s: s.name))
        pending = tuple(sorted(self._pending))
        if self._self_problem is not None:
            # Every other node skips us: peering one-sidedly would leak half-open sessions.
            return PeerSetPlan(
                skipped=skipped,
                pending=pending,
                self_problem=self._self_problem,
                refused_routes=refused,
            )
        hub_topology = self._context.network.topology is Topology.HUB
        if not hub_topology or self._me.spec.role is Role.HUB:
            return PeerSetPlan(
                peers=tuple(self._specs.values()),
                names=self._names_snapshot(),
                skipped=skipped,
                pending=pending,
                forwarding=hub_topology,
                refused_routes=refused,
            )
        return self._assemble_spoke(skipped, pending, refused)

    def _names_snapshot(self) -> dict[Key, str]:
        """The usable members by key, copied only when that set changed (a plan's mapping
        must not change under its holder; an endpoint change need not copy 5000 entries)."""
        if self._names_copy is None:
            self._names_copy = dict(self._names)
        return self._names_copy

    def _assemble_spoke(
        self, skipped: tuple[SkippedPeer, ...], pending: tuple[str, ...], refused: tuple[str, ...]
    ) -> PeerSetPlan:
        """A spoke peers with the hubs; the first hub also carries every other spoke."""
        hubs = sorted(
            (m for m in self._usable.values() if m.agent.spec.role is Role.HUB),
            key=lambda m: _order(m.agent),
        )
        peers = [self._specs[m.name] for m in hubs]
        if hubs:
            via: list[IPNetwork] = list(peers[0].allowed_ips)
            for member in self._usable.values():
                if member.agent.spec.role is not Role.HUB:
                    via.extend((*member.addresses, *member.extras))
            first = peers[0]
            peers[0] = PeerSpec(
                public_key=first.public_key,
                allowed_ips=tuple(via),
                endpoint=first.endpoint,
                persistent_keepalive=first.persistent_keepalive,
            )
        peers.extend(self._specs[name] for name in self._joining)
        return PeerSetPlan(
            peers=tuple(peers),
            names={m.key: m.name for m in hubs},
            skipped=skipped,
            pending=pending,
            refused_routes=refused,
        )
