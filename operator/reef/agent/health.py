"""What the agent reports: peer health, its conditions and ``status.dataplane`` (pure).

Conditions the agent owns (the operator owns ``Allocated``):

- ``Configured``: the interface carries the permanent address(es), key, port and MTU,
  and the peer set was applied. Skipped (garbage) members keep it True — the rest of
  the mesh is configured — but the reason becomes ``PeersSkipped`` and the message
  names them. Likewise ``RoutesRefused`` when prefixes of this member's
  ``extraAllowedIPs`` are not routed (outside the MeshNetwork's ``routablePrefixes``, or
  overlapping the pool or the cluster's own ranges); the message names each and why.
- ``PeersHealthy``: every configured peer is alive: it completed a handshake within the
  last 180 s (WireGuard re-keys every 120 s, so a live session always has one) and,
  when the network sets ``persistentKeepalive`` K, something arrived from it within
  3·K + 5 s (a live peer sends at least a keepalive every K s; this notices a dead
  peer in seconds instead of minutes). With zero peers: True, reason ``NoPeers``.
  A peer planned less than :data:`JOINING_GRACE_SECONDS` ago that has not completed a
  handshake yet is *joining*, not dead: it keeps PeersHealthy True (reason
  ``PeersJoining``). Without that grace a node joining a mesh of N flipped PeersHealthy
  to False and back on every other node: 2·N urgent status writes per join.
  The message names the peers that are not alive; ``status.dataplane.unreachable``
  lists them (at most :data:`UNREACHABLE_LISTED`) for the operator, which counts,
  per member, how many others cannot reach it (MeshNetwork ``MembersReachable``).
- ``Ready`` = Allocated ∧ Configured ∧ not isolated. *Isolated* means there are
  peers but not one of them is alive: then the fault is most likely this node's.
  Some unreachable peers do not make this node NotReady — one broken member must
  not turn the whole mesh NotReady; it is named (PeersHealthy here, MembersReachable
  on the MeshNetwork) instead. A lone first node is Ready (its interface is up with
  its permanent address, waiting for others).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reef.agent.peers import SkippedPeer
from reef.api.conditions import CONDITION_FALSE, CONDITION_TRUE, utc_timestamp
from reef.dataplane import DeviceState, Key
from reef.dataplane.spec import PeerLiveness

HANDSHAKE_HEALTHY = timedelta(seconds=180)
#: Keepalive intervals without any received byte after which a peer counts as dead.
SILENT_KEEPALIVES = 3
SILENCE_SLACK_SECONDS = 5.0
#: A new peer without a handshake is "joining" this long (WireGuard retries a handshake
#: every 5 s; a persistent keepalive starts one as soon as the peer is configured).
JOINING_GRACE_SECONDS = 30.0
#: Names of unreachable peers put into status.dataplane.unreachable (bounded writes).
UNREACHABLE_LISTED = 16

CONFIGURED = "Configured"
PEERS_HEALTHY = "PeersHealthy"
READY = "Ready"
ALLOCATED = "Allocated"
AGENT_CONDITIONS = (CONFIGURED, PEERS_HEALTHY, READY)

_LISTED = 5  # names listed in a message before "and N more"


@dataclass(frozen=True, slots=True)
class ConditionValue:
    """A condition as the agent means to write it (no timestamps)."""

    type: str
    status: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything the status is derived from, gathered by the agent after a sync."""

    backend: str
    backend_reason: str
    interface: str
    configured_addresses: tuple[str, ...]
    listen_port: int
    allocated: bool
    configured: bool
    configure_error: str | None
    total: int
    healthy: int
    unhealthy: tuple[str, ...]
    skipped: tuple[SkippedPeer, ...]
    self_problem: str | None = None
    #: Peers planned less than JOINING_GRACE_SECONDS ago, no handshake yet (not unhealthy).
    joining: tuple[str, ...] = ()
    refused_routes: tuple[str, ...] = ()
    #: Reason of Configured=False when configure_error is set (e.g. PortInUse).
    configure_reason: str = "ConfigurationFailed"


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    rest = len(items) - _LISTED
    return f"{shown} and {rest} more" if rest > 0 else shown


class RxTracker:
    """When each peer's received-bytes counter last grew (monotonic seconds).

    Kept by the agent between health checks; memory is one entry per peer.
    """

    def __init__(self) -> None:
        self._seen: dict[Key, tuple[int, float]] = {}

    def silence(self, state: DeviceState, now: float) -> dict[Key, float]:
        """Seconds since each peer's rx counter last changed (0 when it just did)."""
        result = {}
        seen = {}
        for key, peer in state.peers.items():
            previous = self._seen.get(key)
            since = now if previous is None or previous[0] != peer.rx_bytes else previous[1]
            seen[key] = (peer.rx_bytes, since)
            result[key] = now - since
        self._seen = seen
        return result


def peer_health(
    state: DeviceState,
    names: Mapping[Key, str],
    now: datetime,
    silence: Mapping[Key, float] | None = None,
    keepalive: int = 0,
) -> tuple[int, tuple[str, ...]]:
    """Healthy count and the names of unhealthy peers among those in ``names``."""
    limit = SILENT_KEEPALIVES * keepalive + SILENCE_SLACK_SECONDS if keepalive else None
    unhealthy = []
    healthy = 0
    for key, name in names.items():
        peer = state.peers.get(key)
        handshake = peer.last_handshake if peer is not None else None
        quiet = (silence or {}).get(key, 0.0)
        recent = handshake is not None and now - handshake <= HANDSHAKE_HEALTHY
        if recent and (limit is None or quiet <= limit):
            healthy += 1
        else:
            unhealthy.append(name)
    return healthy, tuple(sorted(unhealthy))


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One health check's result: what :func:`peer_health` says, and the ages (seconds)
    of the ``oldest`` handshakes by peer name, for the bounded metric."""

    healthy: int
    unhealthy: tuple[str, ...]
    oldest: dict[str, float]
    #: Not healthy yet, not unhealthy either: planned within the grace, never handshaked.
    joining: tuple[str, ...] = ()


class LivenessTracker:
    """The health check the agent runs every few seconds, at a cost of one tight pass.

    Same verdicts as :func:`peer_health` over :class:`RxTracker`'s silences (the
    straightforward form, kept as the reference: tests/unit/test_liveness_tracker.py
    checks both agree), but on :data:`~reef.dataplane.spec.PeerLiveness` (raw key bytes:
    their hash is cached, a :class:`Key`'s is computed in Python on every lookup), with
    each threshold turned into one cut-off time from one clock read, the rx counters
    updated in place only where they moved, and the names looked up from a table
    rebuilt only when the plan's set of peers changes. At 5000 peers and nothing
    changing, nothing is allocated per peer that outlives the check.
    """

    def __init__(self, oldest: int = 10, joining_grace: float = JOINING_GRACE_SECONDS) -> None:
        self._limit = oldest
        self._joining_grace = joining_grace
        self._names: Mapping[Key, str] | None = None
        self._by_raw: dict[bytes, str] = {}
        self._planned: dict[bytes, float] = {}  # monotonic time each peer was first planned
        self._rx: dict[bytes, int] = {}  # last rx count seen, per device peer
        self._since: dict[bytes, float] = {}  # monotonic time it last changed

    def check(
        self,
        live: PeerLiveness,
        names: Mapping[Key, str],
        wall_now: float,
        monotonic_now: float,
        keepalive: int = 0,
    ) -> HealthCheck:
        """Healthy count, unhealthy names (sorted) and oldest handshakes among ``names``."""
        if names is not self._names:  # the planner hands out a new mapping on a change
            self._names = names
            self._by_raw = {key.raw: name for key, name in names.items()}
            planned = self._planned
            self._planned = {raw: planned.get(raw, monotonic_now) for raw in self._by_raw}
        rx_seen, since, by_raw = self._rx, self._since, self._by_raw
        if rx_seen.keys() != live.keys():  # peers left the device: their counters go
            for gone in [raw for raw in rx_seen if raw not in live]:
                del rx_seen[gone], since[gone]
        recent_after = wall_now - HANDSHAKE_HEALTHY.total_seconds()
        heard_after = (
            monotonic_now - (SILENT_KEEPALIVES * keepalive + SILENCE_SLACK_SECONDS)
            if keepalive
            else float("-inf")
        )
        unhealthy: list[bytes] = []
        stamps: list[float] = []
        stamped: list[str] = []
        healthy = 0
        for raw, (handshake, rx) in live.items():
            if rx_seen.get(raw) != rx:
                rx_seen[raw] = rx
                since[raw] = monotonic_now
            name = by_raw.get(raw)
            if name is None:
                continue  # a joining member: on the device, not counted
            if handshake:
                stamps.append(handshake)
                stamped.append(name)
            if handshake and handshake >= recent_after and since[raw] >= heard_after:
                healthy += 1
            else:
                unhealthy.append(raw)
        if healthy + len(unhealthy) < len(by_raw):  # planned peers the device lacks
            unhealthy.extend(by_raw.keys() - live.keys())
        chosen = heapq.nsmallest(self._limit, range(len(stamps)), key=stamps.__getitem__)
        oldest = {stamped[i]: wall_now - stamps[i] for i in chosen}
        # Usually none are unhealthy: this pass is over the few that are.
        planned_after = monotonic_now - self._joining_grace
        dead: list[str] = []
        joining: list[str] = []
        for raw in unhealthy:
            handshake = live[raw][0] if raw in live else 0.0
            young = self._planned[raw] > planned_after
            (joining if young and not handshake else dead).append(by_raw[raw])
        return HealthCheck(healthy, tuple(sorted(dead)), oldest, tuple(sorted(joining)))


def conditions(observation: Observation) -> tuple[ConditionValue, ...]:
    o = observation
    if o.configure_error is not None:
        configured = ConditionValue(
            CONFIGURED, CONDITION_FALSE, o.configure_reason, o.configure_error
        )
    elif not o.configured:
        configured = ConditionValue(
            CONFIGURED,
            CONDITION_FALSE,
            "WaitingForAddress",
            "waiting for the operator to allocate a permanent address",
        )
    else:
        base = (
            f"{o.interface} ({o.backend}) has {', '.join(o.configured_addresses)},"
            f" port {o.listen_port}, {o.total} peer(s)"
        )
        notes = []
        if o.skipped:
            notes.append("skipped: " + _listing([f"{s.name} ({s.reason})" for s in o.skipped]))
        if o.self_problem:
            notes.append(f"other nodes skip this member: {o.self_problem}")
        if notes:
            reason = "PeersSkipped"
        elif o.refused_routes:
            reason = "RoutesRefused"
        else:
            reason = "InterfaceConfigured"
        if o.refused_routes:
            notes.append("extraAllowedIPs not routed: " + _listing(list(o.refused_routes)))
        configured = ConditionValue(CONFIGURED, CONDITION_TRUE, reason, "; ".join([base, *notes]))
    if o.total == 0:
        peers = ConditionValue(
            PEERS_HEALTHY, CONDITION_TRUE, "NoPeers", "no peers to handshake with"
        )
    elif o.healthy == o.total:
        peers = ConditionValue(
            PEERS_HEALTHY,
            CONDITION_TRUE,
            "HandshakesRecent",
            f"all {o.total} peer(s) completed a handshake within 180 s",
        )
    elif not o.unhealthy:  # the rest are joining
        peers = ConditionValue(
            PEERS_HEALTHY,
            CONDITION_TRUE,
            "PeersJoining",
            f"{o.healthy} of {o.total} peer(s) completed a handshake within 180 s; joined"
            f" less than {JOINING_GRACE_SECONDS:.0f} s ago, no handshake yet: "
            + _listing(list(o.joining)),
        )
    else:
        peers = ConditionValue(
            PEERS_HEALTHY,
            CONDITION_FALSE,
            "HandshakesMissing",
            f"{len(o.unhealthy)} of {o.total} peer(s) without a handshake in 180 s: "
            + _listing(list(o.unhealthy)),
        )
    if not o.allocated:
        ready = ConditionValue(READY, CONDITION_FALSE, "NotAllocated", "no permanent address yet")
    elif configured.status != CONDITION_TRUE:
        ready = ConditionValue(READY, CONDITION_FALSE, "NotConfigured", configured.message)
    elif o.unhealthy and o.healthy == 0:  # joining peers alone say nothing yet
        ready = ConditionValue(
            READY,
            CONDITION_FALSE,
            "Isolated",
            f"none of the {o.total} peer(s) is reachable from this node: check this node's"
            " underlay (UDP to the peers' listen port) first",
        )
    elif peers.status != CONDITION_TRUE:
        ready = ConditionValue(
            READY,
            CONDITION_TRUE,
            "SomePeersUnreachable",
            f"allocated, configured, {o.healthy} of {o.total} peer(s) reachable; not reachable: "
            + _listing(list(o.unhealthy)),
        )
    else:
        handshaking = "every peer handshaking" if not o.joining else "no peer unreachable"
        ready = ConditionValue(
            READY, CONDITION_TRUE, "Ready", f"allocated, configured, {handshaking}"
        )
    return configured, peers, ready


def dataplane(observation: Observation, last_sync: datetime) -> dict[str, Any]:
    o = observation
    return {
        "backend": o.backend,
        "backendReason": o.backend_reason,
        "interface": o.interface,
        "configuredAddresses": list(o.configured_addresses),
        "listenPort": o.listen_port,
        "peers": {"total": o.total, "healthy": o.healthy, "summary": f"{o.healthy}/{o.total}"},
        "unreachable": list(o.unhealthy[:UNREACHABLE_LISTED]),
        "lastSync": utc_timestamp(last_sync),
    }


def _comparable_dataplane(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """The dataplane block without lastSync, which changes on every write by design."""
    return {k: v for k, v in (value or {}).items() if k != "lastSync"}


@dataclass(frozen=True, slots=True)
class WriteDecision:
    """Whether the status needs a write, and whether it may not wait."""

    needed: bool
    urgent: bool


def decide_write(
    current_status: Mapping[str, Any],
    wanted: tuple[ConditionValue, ...],
    wanted_dataplane: dict[str, Any],
    generation: int,
) -> WriteDecision:
    """Compare the object's status with what we would write.

    Urgent (written at once): a condition is missing or its ``status`` flips, or the
    dataplane block is missing (first report). Anything else that differs — counts,
    messages, reasons — is coalesced by the caller's rate limit.
    """
    existing = {c.get("type"): c for c in current_status.get("conditions") or []}
    urgent = current_status.get("dataplane") is None
    needed = _comparable_dataplane(current_status.get("dataplane")) != _comparable_dataplane(
        wanted_dataplane
    )
    for value in wanted:
        old = existing.get(value.type)
        if old is None or old.get("status") != value.status:
            urgent = needed = True
        elif (old.get("reason"), old.get("message"), old.get("observedGeneration")) != (
            value.reason,
            value.message,
            generation,
        ):
            needed = True
    return WriteDecision(needed=needed or urgent, urgent=urgent)
