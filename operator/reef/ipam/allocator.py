"""Batch allocation: pending MeshAgents in, one address per pool each, out.

Per pool (IP family), a request gets, in this order:

1. what its uid already holds: re-asking is idempotent, so a crash, a retry after a
   409 or a second operator never allocates twice, and a held address never changes
   (a differing spec.requestedAddresses is then ignored and said so in the message);
2. its requested address, if the pool allows it and it is free, owned by the same
   identity, or released by the same name; otherwise the whole request is refused
   with a reason - never a silent substitute;
3. its own name's released address still inside ``retention`` (sticky identity: a
   re-created MeshAgent, new uid, same name, gets its old address back);
4. for a new identity: the lowest address without a ledger entry (never used, or
   forgotten after garbage collection); then the released address free the longest
   whose cool-down is over.

Retention is a *soft* reservation. Step 4 takes released addresses oldest-first, so
those past retention go before those still retained - only when no address without
an entry is left does a new identity get a retained address, and never before its
``reuseCooldown``. A full pool thus keeps working after deletions, at the price of a
deleted member's address not coming back to it. A requested address, by contrast,
is refused while it is retained for another name (``CoolingDown``): an explicit
request does not break a reservation.

A request either gets all its pools' addresses or none: if one family is exhausted
or refused, nothing is written for it. Within a batch, requests that already hold
addresses go first, then requested addresses, then returning names, then new
identities, so a new identity cannot take what another request in the same batch
asked for or is sticky to. Every choice is O(log n) (heap tops) or amortised O(1)
(the frontier).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reef.ipam.index import PoolIndex
from reef.ipam.ledger import Ledger
from reef.ipam.model import (
    AllocationBatch,
    AllocationRequest,
    AllocationResult,
    EntryState,
    IPAddress,
    Outcome,
    Owner,
    Policy,
    Refusal,
    RefusalReason,
    normalise_time,
)
from reef.ipam.pool import shard_id_of


def allocate(
    ledger: Ledger, requests: Sequence[AllocationRequest], now: datetime
) -> AllocationBatch:
    """Allocate for every request; updates ``ledger`` in place (see reef.ipam.ledger)."""
    now = normalise_time(now)
    changed: set[str] = set()
    results: dict[int, AllocationResult] = {}
    order = sorted(range(len(requests)), key=lambda i: _phase(ledger, requests[i]))
    for i in order:
        results[i] = _allocate_one(ledger, requests[i], now, changed)
    return AllocationBatch(tuple(results[i] for i in range(len(requests))), frozenset(changed))


def _phase(ledger: Ledger, request: AllocationRequest) -> int:
    if ledger.addresses_of(request.uid):
        return 0
    if request.requested:
        return 1
    if any(request.name in ledger.index(pool.version).released_by_name for pool in ledger.pools):
        return 2
    return 3


def _allocate_one(
    ledger: Ledger, request: AllocationRequest, now: datetime, changed: set[str]
) -> AllocationResult:
    refusals, wanted = _split_requested(ledger, request)
    chosen: dict[int, int] = {}
    held: list[str] = []
    exhausted: list[str] = []
    for pool in ledger.pools:
        index = ledger.index(pool.version)
        owned = index.allocated_of(request.uid)
        requested = wanted.get(pool.version)
        if owned:
            chosen[pool.version] = owned[0]
            if requested is not None and int(requested) != owned[0]:
                held.append(f"{pool.address(owned[0])} (requested {requested} ignored)")
        elif requested is not None:
            refusal = _refuse_requested(index, request, requested, now, ledger.policy)
            if refusal is None:
                chosen[pool.version] = int(requested)
            else:
                refusals.append(refusal)
        else:
            value = _retained(index, request, now, ledger.policy)
            if value is None:
                value = _fresh_or_reusable(index, now, ledger.policy)
            if value is None:
                exhausted.append(str(pool.network))
            else:
                chosen[pool.version] = value
    if refusals:
        return AllocationResult(
            request,
            Outcome.REQUESTED_ADDRESS_UNAVAILABLE,
            refusals=tuple(refusals),
            message="; ".join(refusal.message for refusal in refusals),
        )
    if exhausted:
        return AllocationResult(
            request,
            Outcome.POOL_EXHAUSTED,
            message=f"no address left in {', '.join(exhausted)}",
        )
    addresses: list[IPAddress] = []
    for pool in ledger.pools:
        value = chosen[pool.version]
        address = pool.address(value)
        addresses.append(address)
        owner = ledger.index(pool.version).get(value)
        if owner is None or owner.state is not EntryState.ALLOCATED or owner.uid != request.uid:
            ledger.index(pool.version).put(
                value, Owner(request.uid, request.name, EntryState.ALLOCATED, now)
            )
            changed.add(shard_id_of(address))
    message = "already holds " + ", ".join(held) + "; addresses never change" if held else ""
    return AllocationResult(request, Outcome.ALLOCATED, tuple(addresses), message=message)


def _split_requested(
    ledger: Ledger, request: AllocationRequest
) -> tuple[list[Refusal], dict[int, IPAddress]]:
    """Requested addresses by IP family; a family with no pool or asked twice is refused."""
    refusals: list[Refusal] = []
    wanted: dict[int, IPAddress] = {}
    versions = {pool.version for pool in ledger.pools}
    for address in request.requested:
        if address.version not in versions:
            refusals.append(
                Refusal(
                    address,
                    RefusalReason.OUTSIDE_POOL,
                    f"{address} is outside the network: it has no IPv{address.version} pool",
                )
            )
        elif address.version in wanted:
            refusals.append(
                Refusal(
                    address,
                    RefusalReason.FAMILY_REQUESTED_TWICE,
                    f"{address}: only one IPv{address.version} address per member",
                )
            )
        else:
            wanted[address.version] = address
    return refusals, wanted


def _refuse_requested(
    index: PoolIndex, request: AllocationRequest, address: IPAddress, now: datetime, policy: Policy
) -> Refusal | None:
    if (unusable := index.pool.refusal(address)) is not None:
        return Refusal(address, *unusable)
    value = int(address)
    if value in index.damaged:
        return Refusal(address, RefusalReason.IN_USE, f"{address} has an unreadable ledger entry")
    owner = index.get(value)
    if owner is None or owner.uid == request.uid:
        return None
    if owner.state is EntryState.ALLOCATED:
        return Refusal(address, RefusalReason.IN_USE, f"{address} is allocated to {owner.name}")
    if owner.name == request.name:
        return None
    if now < owner.since + policy.reuse_cooldown:
        until = owner.since + policy.reuse_cooldown
        return Refusal(
            address,
            RefusalReason.COOLING_DOWN,
            f"{address} was released by {owner.name}; cooling down until {until.isoformat()}",
        )
    if now < owner.since + policy.retention:
        until = owner.since + policy.retention
        return Refusal(
            address,
            RefusalReason.COOLING_DOWN,
            f"{address} is retained for {owner.name} until {until.isoformat()}",
        )
    return None


def _retained(
    index: PoolIndex, request: AllocationRequest, now: datetime, policy: Policy
) -> int | None:
    """The most recently released address of this name still inside retention."""
    best: Owner | None = None
    best_value: int | None = None
    for value in index.released_of(request.name):
        owner = index.get(value)
        if owner is None or (now >= owner.since + policy.retention and owner.uid != request.uid):
            continue
        if best is None or owner.since > best.since:
            best, best_value = owner, value
    return best_value


def _fresh_or_reusable(index: PoolIndex, now: datetime, policy: Policy) -> int | None:
    fresh = index.peek_fresh()
    if fresh is not None:
        return fresh
    top = index.peek_released()
    if top is not None and top[0] + policy.reuse_cooldown <= now:
        return top[1]
    return None
