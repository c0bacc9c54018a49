"""Which member is the broken one: the members' own reports, counted per member (pure).

Every agent lists the peers it cannot reach in ``status.dataplane.unreachable`` (at
most 16 names) and says whether it is *isolated* (it reaches none of its peers: then
its own list says nothing about the others). The operator already watches every
MeshAgent; it keeps one small report per member and counts, for each member, how
many non-isolated members cannot reach it. One dead node thus shows as "unreachable
from 4 of 4 members" on the MeshNetwork, instead of four NotReady rows.

Cost: one dict entry per member; a recount is O(members * 16), done only when a
report changed (status writes coalesce), never a write per member.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Members named in the condition message and in status.unreachableMembers.
LISTED = 16


@dataclass(frozen=True, slots=True)
class MemberReport:
    name: str
    #: The agent reported a configured interface (it takes part in the count).
    reporting: bool
    isolated: bool
    unreachable: tuple[str, ...]


def report_of(body: Mapping[str, Any]) -> MemberReport:
    status = body.get("status") or {}
    dataplane = status.get("dataplane") or {}
    peers = dataplane.get("peers") or {}
    total, healthy = int(peers.get("total") or 0), int(peers.get("healthy") or 0)
    return MemberReport(
        name=str(body["metadata"]["name"]),
        reporting=bool(dataplane.get("configuredAddresses")),
        isolated=total > 0 and healthy == 0,
        unreachable=tuple(str(n) for n in dataplane.get("unreachable") or []),
    )


@dataclass(frozen=True, slots=True)
class Reachability:
    status: str
    reason: str
    message: str
    #: [{name, unreachableFrom, observers}] worst first, at most LISTED.
    members: list[dict[str, Any]]


def reachability(reports: Iterable[MemberReport]) -> Reachability:
    reports = list(reports)
    observers = [r for r in reports if r.reporting and not r.isolated]
    counts: dict[str, int] = {}
    for report in observers:
        for name in report.unreachable:
            counts[name] = counts.get(name, 0) + 1
    isolated = sorted(r.name for r in reports if r.reporting and r.isolated)
    observer_names = {r.name for r in observers}
    members = [
        {
            "name": name,
            "unreachableFrom": count,
            # Everyone who reports, but the member itself.
            "observers": len(observers) - (name in observer_names),
        }
        for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
    if not members and not isolated:
        return Reachability(
            "True",
            "AllReachable",
            f"each of the {len(observers)} reporting member(s) reaches all of its peers",
            [],
        )
    parts = [
        f"{m['name']} unreachable from {m['unreachableFrom']} of {m['observers']} members"
        for m in members[:5]
    ]
    parts += [f"{name} reaches none of its peers" for name in isolated[:5]]
    more = len(members) + len(isolated) - len(parts)
    message = "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return Reachability(
        "False",
        "MembersUnreachable",
        message + ". Check the named members' nodes: agent running, UDP to their listen port"
        " open (kubectl get ma shows each row's PEERS and Ready)",
        members[:LISTED],
    )
