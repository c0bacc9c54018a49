"""Repair planning: compare the ledger with the live MeshAgents and say what to fix.

Pure: the operator gathers the inputs (decoded ledger, live agents with their
status addresses), acts on the plan, and keeps any bookkeeping over time (e.g. when
an orphan was first seen: an entry is released only after a grace period and a
re-check, as the ClusterIP repair loop does).

Rules, in the order they are decided:

* **duplicates** - several live agents claim one address in status: the one the
  ledger records as its owner keeps it (the allocator's compare-and-swap record of who
  got it first); without such a claimant the oldest (creationTimestamp, then uid)
  does. The others must be re-allocated (clear their status, then allocate) and the
  conflict reported loudly.
* **recreate** - a status address the ledger lacks (the ledger was deleted), holds as
  released, or holds for another uid: the status is what WireGuard is configured
  with, so the ledger follows it (:func:`recreate_entries`).
* not in the plan: a live agent without status whose uid holds addresses in the ledger
  (a crash between the ledger write and the status write) is *adopted* by simply
  allocating it: ``allocate`` is sticky by uid and gives it those addresses.
* **surplus** - a live uid holds more ledger entries than its status (or, without a
  status, more than one per pool): the extra entries are released.
* **orphaned** - allocated entries whose uid is not live: release candidates.
* **unverifiable** - a status address outside every pool, never allocatable, or
  covered by an unreadable ledger entry: for a human.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from reef.ipam.ledger import Ledger
from reef.ipam.model import EntryState, IPAddress


@dataclass(frozen=True, slots=True)
class LiveAgent:
    """A MeshAgent that exists now: identity, status.addresses (may be empty), creation time."""

    uid: str
    name: str
    addresses: tuple[IPAddress, ...]
    created: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """An address and who it belongs (or belonged) to."""

    address: IPAddress
    uid: str
    name: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    address: IPAddress
    keeper: LiveAgent
    losers: tuple[LiveAgent, ...]


@dataclass(frozen=True, slots=True)
class RepairPlan:
    recreate: tuple[Claim, ...] = ()
    orphaned: tuple[Claim, ...] = ()
    duplicates: tuple[Duplicate, ...] = ()
    surplus: tuple[Claim, ...] = ()
    unverifiable: tuple[Claim, ...] = ()


def plan_repair(ledger: Ledger, agents: Sequence[LiveAgent]) -> RepairPlan:
    """Compare ``ledger`` with ``agents`` (all live MeshAgents of the network)."""
    claims: dict[IPAddress, list[LiveAgent]] = {}
    for agent in agents:
        for address in agent.addresses:
            claims.setdefault(address, []).append(agent)
    recreate: list[Claim] = []
    duplicates: list[Duplicate] = []
    unverifiable: list[Claim] = []
    kept: dict[IPAddress, str] = {}
    for address, claimants in sorted(claims.items(), key=lambda item: _sort_key(item[0])):
        recorded = ledger.owner_of(address)
        owner_uid = (
            recorded.uid
            if recorded is not None and recorded.state is EntryState.ALLOCATED
            else None
        )
        keeper, *losers = sorted(
            claimants, key=lambda agent: (agent.uid != owner_uid, agent.created, agent.uid)
        )
        if losers:
            duplicates.append(Duplicate(address, keeper, tuple(losers)))
        index = ledger.index_of(address)
        if index is None or index.pool.refusal(address) is not None or ledger.is_damaged(address):
            unverifiable.append(Claim(address, keeper.uid, keeper.name))
            continue
        kept[address] = keeper.uid
        owner = ledger.owner_of(address)
        if owner is not None and owner.uid == keeper.uid and owner.state is EntryState.ALLOCATED:
            continue
        recreate.append(Claim(address, keeper.uid, keeper.name))
    surplus, orphaned = _ledger_side(ledger, agents, kept)
    return RepairPlan(
        tuple(recreate), tuple(orphaned), tuple(duplicates), tuple(surplus), tuple(unverifiable)
    )


def _ledger_side(
    ledger: Ledger, agents: Sequence[LiveAgent], kept: dict[IPAddress, str]
) -> tuple[list[Claim], list[Claim]]:
    """Surplus and orphans, from the ledger's allocated entries."""
    live = {agent.uid: agent for agent in agents}
    held: dict[str, list[IPAddress]] = {}
    orphaned: list[Claim] = []
    for address, owner in sorted(ledger.entries(), key=lambda item: _sort_key(item[0])):
        if owner.state is not EntryState.ALLOCATED or kept.get(address, owner.uid) != owner.uid:
            continue
        if owner.uid in live:
            held.setdefault(owner.uid, []).append(address)
        else:
            orphaned.append(Claim(address, owner.uid, owner.name))
    surplus: list[Claim] = []
    for uid, addresses in held.items():
        agent = live[uid]
        if agent.addresses:
            families = {address.version for address in agent.addresses}
            surplus += [
                Claim(address, uid, agent.name)
                for address in addresses
                if address.version in families and address not in agent.addresses
            ]
            continue
        # No status yet: one entry per family is what allocating it will adopt.
        kept_families: set[int] = set()
        for address in addresses:
            if address.version in kept_families:
                surplus.append(Claim(address, uid, agent.name))
            kept_families.add(address.version)
    return surplus, orphaned


def recreate_entries(ledger: Ledger, plan: RepairPlan, now: datetime) -> frozenset[str]:
    """Write the plan's missing ledger entries back (from the statuses); the changed shards.

    Surplus and orphans are not released here: that waits for the operator's grace
    period and re-check.
    """
    changed: set[str] = set()
    for claim in plan.recreate:
        changed |= ledger.assign(claim.address, claim.uid, claim.name, now)
    return frozenset(changed)


def _sort_key(address: IPAddress) -> tuple[int, int]:
    return address.version, int(address)
