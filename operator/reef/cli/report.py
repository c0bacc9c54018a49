"""The mesh's health as data: a pure function of MeshNetworks, MeshAgents and the operator.

Sources are what the API holds today: the MeshNetwork status (pool usage and its
conditions), each member's conditions (``Allocated`` from the operator; ``Configured``,
``PeersHealthy``, ``Ready`` from its agent) and ``status.dataplane``. Who cannot reach
whom comes from ``status.dataplane.unhealthyPeers`` when an agent writes it, else from
the names the ``PeersHealthy`` message lists. A field that is missing makes the answer
"unknown", never a crash.

A member that no agent reports on (joined with ``reef join`` and run by wg-quick) is
judged by what the others say about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reef.api import names

Body = Mapping[str, Any]

DATAPLANE_LABEL = names.DATAPLANE_LABEL
WG_QUICK = names.WG_QUICK_DATAPLANE

_LIST_TAIL = re.compile(r" and \d+ more$")


class Health(StrEnum):
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    UNHEALTHY = "Unhealthy"
    PENDING = "Pending"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class MemberReport:
    name: str
    network: str
    node: str
    role: str
    addresses: tuple[str, ...]
    endpoint: str
    health: Health
    reason: str
    peers: str
    #: Members this one reports it has no recent handshake with.
    cannot_reach: tuple[str, ...] = ()
    #: Members that report they have no recent handshake with this one.
    unreachable_from: tuple[str, ...] = ()
    external: bool = False
    agentless: bool = False


@dataclass(frozen=True, slots=True)
class PoolReport:
    network: str
    cidrs: tuple[str, ...]
    topology: str
    capacity: int | None
    allocated: int | None
    reserved: int | None
    ready: str
    nearly_exhausted: bool
    exhausted: bool
    message: str


@dataclass(frozen=True, slots=True)
class OperatorReport:
    health: Health
    message: str


@dataclass(frozen=True, slots=True)
class MeshReport:
    pools: tuple[PoolReport, ...]
    members: tuple[MemberReport, ...]
    operator: OperatorReport
    conflicts: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (``-o json|yaml``)."""
        return {
            "healthy": self.healthy,
            "problems": list(self.problems),
            "operator": {"health": str(self.operator.health), "message": self.operator.message},
            "networks": [
                {
                    "name": p.network,
                    "cidrs": list(p.cidrs),
                    "topology": p.topology,
                    "capacity": p.capacity,
                    "allocated": p.allocated,
                    "reserved": p.reserved,
                    "ready": p.ready,
                    "nearlyExhausted": p.nearly_exhausted,
                    "exhausted": p.exhausted,
                    "message": p.message,
                }
                for p in self.pools
            ],
            "members": [
                {
                    "name": m.name,
                    "network": m.network,
                    "node": m.node,
                    "role": m.role,
                    "addresses": list(m.addresses),
                    "endpoint": m.endpoint,
                    "external": m.external,
                    "agent": not m.agentless,
                    "health": str(m.health),
                    "reason": m.reason,
                    "peers": m.peers,
                    "cannotReach": list(m.cannot_reach),
                    "unreachableFrom": list(m.unreachable_from),
                }
                for m in self.members
            ],
            "conflicts": list(self.conflicts),
        }


def _conditions(body: Body) -> dict[str, Mapping[str, Any]]:
    status = body.get("status") or {}
    return {c.get("type", ""): c for c in status.get("conditions") or []}


def listed_names(message: str) -> tuple[str, ...]:
    """The member names a ``PeersHealthy`` message lists after its colon."""
    _, sep, tail = message.partition(": ")
    if not sep:
        return ()
    tail = _LIST_TAIL.sub("", tail.strip())
    return tuple(n.strip() for n in tail.split(",") if n.strip())


def _cannot_reach(body: Body) -> tuple[str, ...]:
    dataplane = (body.get("status") or {}).get("dataplane") or {}
    structured = dataplane.get("unhealthyPeers")
    if isinstance(structured, list):
        return tuple(sorted(str(n) for n in structured))
    peers = _conditions(body).get("PeersHealthy")
    if peers is None or peers.get("status") != "False":
        return ()
    return tuple(sorted(listed_names(str(peers.get("message", "")))))


def _is_agentless(body: Body) -> bool:
    labels = (body.get("metadata") or {}).get("labels") or {}
    return labels.get(DATAPLANE_LABEL) == WG_QUICK


def _own_health(body: Body) -> tuple[Health, str]:
    conditions = _conditions(body)
    allocated = conditions.get("Allocated")
    addresses = (body.get("status") or {}).get("addresses") or []
    if not addresses:
        if allocated is not None and allocated.get("status") == "False":
            return Health.UNHEALTHY if allocated.get("reason") != "Pending" else Health.PENDING, (
                f"{allocated.get('reason')}: {allocated.get('message', '')}"
            )
        return Health.PENDING, "waiting for the operator to allocate an address"
    if _is_agentless(body):
        return Health.UNKNOWN, "wg-quick host (no agent reports on it)"
    ready = conditions.get("Ready")
    if ready is None:
        return Health.UNKNOWN, "no agent has reported yet"
    if ready.get("status") == "True":
        configured = conditions.get("Configured") or {}
        if configured.get("reason") == "PeersSkipped":
            return Health.DEGRADED, str(configured.get("message", ""))
        return Health.HEALTHY, str(ready.get("message", ""))
    return Health.UNHEALTHY, f"{ready.get('reason')}: {ready.get('message', '')}"


def _peers_column(body: Body) -> str:
    counts = ((body.get("status") or {}).get("dataplane") or {}).get("peers") or {}
    if "total" not in counts:
        return "-"
    return f"{counts.get('healthy', 0)}/{counts['total']}"


def member_reports(agents: Iterable[Body]) -> tuple[MemberReport, ...]:
    """One report per member, with reachability seen from both sides."""
    live = [a for a in agents if not (a.get("metadata") or {}).get("deletionTimestamp")]
    cannot = {a["metadata"]["name"]: _cannot_reach(a) for a in live}
    unreachable_from: dict[str, list[str]] = {}
    for reporter, targets in cannot.items():
        for target in targets:
            unreachable_from.setdefault(target, []).append(reporter)
    reports = []
    for body in sorted(live, key=lambda a: (a["spec"].get("network", ""), a["metadata"]["name"])):
        name = body["metadata"]["name"]
        spec = body.get("spec") or {}
        health, reason = _own_health(body)
        complained = tuple(sorted(unreachable_from.get(name, ())))
        if complained and health in (Health.HEALTHY, Health.DEGRADED, Health.UNKNOWN):
            # The member may be dead: its own (stale) report says fine, its peers disagree.
            health = Health.UNHEALTHY
            reason = f"no recent handshake with it from: {', '.join(complained)}"
        elif health is Health.UNKNOWN and _is_agentless(body) and _any_reporter(live, name):
            health, reason = Health.HEALTHY, "every member with an agent handshakes with it"
        reports.append(
            MemberReport(
                name=name,
                network=str(spec.get("network", names.DEFAULT_NETWORK)),
                node=str(spec.get("nodeName", "")),
                role=str(spec.get("role", "Agent")),
                addresses=tuple((body.get("status") or {}).get("addresses") or ()),
                endpoint=str(spec.get("endpoint", "")),
                health=health,
                reason=reason,
                peers=_peers_column(body),
                cannot_reach=cannot.get(name, ()),
                unreachable_from=complained,
                external=not spec.get("nodeName"),
                agentless=_is_agentless(body),
            )
        )
    return tuple(reports)


def _any_reporter(live: list[Body], name: str) -> bool:
    """Whether some other member's agent reports peer health (so silence about ``name`` counts)."""
    return any("PeersHealthy" in _conditions(a) and a["metadata"]["name"] != name for a in live)


def pool_report(network: Body) -> PoolReport:
    spec = network.get("spec") or {}
    status = network.get("status") or {}
    conditions = _conditions(network)
    ready = conditions.get("Ready") or {}
    nearly = conditions.get("PoolNearlyExhausted") or {}
    exhausted = conditions.get("PoolExhausted") or {}
    return PoolReport(
        network=network["metadata"]["name"],
        cidrs=tuple(spec.get("cidrs") or ()),
        topology=str(spec.get("topology", "FullMesh")),
        capacity=status.get("capacity"),
        allocated=status.get("allocated"),
        reserved=status.get("reserved"),
        ready=str(ready.get("status", "Unknown")),
        nearly_exhausted=nearly.get("status") == "True",
        exhausted=exhausted.get("status") == "True",
        message=str(ready.get("message") or nearly.get("message") or "no status yet"),
    )


def _conflicts(agents: Iterable[Body]) -> tuple[str, ...]:
    found = []
    for body in agents:
        name = body["metadata"]["name"]
        conditions = _conditions(body)
        allocated = conditions.get("Allocated") or {}
        if allocated.get("reason") in ("Conflict", "RequestedAddressUnavailable"):
            found.append(f"{name}: {allocated.get('reason')}: {allocated.get('message', '')}")
        configured = conditions.get("Configured") or {}
        if configured.get("reason") == "PeersSkipped":
            found.append(f"{name}: {configured.get('message', '')}")
    return tuple(found)


def build_report(
    networks: Iterable[Body], agents: Iterable[Body], operator: OperatorReport
) -> MeshReport:
    """Everything ``reef status`` shows, and the problems that make it exit non-zero."""
    agents = list(agents)
    pools = tuple(pool_report(n) for n in sorted(networks, key=lambda n: n["metadata"]["name"]))
    members = member_reports(agents)
    conflicts = _conflicts(agents)
    problems: list[str] = []
    if operator.health is Health.UNHEALTHY:
        problems.append(f"operator: {operator.message}")
    for pool in pools:
        if pool.exhausted:
            problems.append(f"network {pool.network}: pool exhausted ({pool.message})")
        if pool.ready == "False":
            problems.append(f"network {pool.network}: not Ready: {pool.message}")
    for member in members:
        if member.health is Health.UNHEALTHY:
            problems.append(f"member {member.name}: {member.reason}")
        for target in member.cannot_reach:
            problems.append(f"{member.name} cannot reach {target}")
    problems.extend(f"conflict: {c}" for c in conflicts)
    return MeshReport(pools, members, operator, conflicts, tuple(problems))
