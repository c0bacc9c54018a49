"""The periodic repair pass: ledger <-> statuses <-> live UIDs, at start and on a timer.

* Entries missing from the ledger are rebuilt from statuses (on every full read).
* Orphaned entries (owner UID gone) are released only after they were seen orphaned
  for the grace period *and* a fresh GET confirms the owner is gone - the ClusterIP
  repair loop's lesson: never free an address on one stale observation.
* Surplus entries of a live UID get the same grace before they are released.
* True duplicates keep the older owner; the newer one is re-allocated, loudly.
* Released entries older than max(retention, cool-down) are forgotten.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from reef.ipam import Claim, IPAddress, Ledger, LiveAgent, RepairPlan
from reef.observability import metrics
from reef.observability.events import EventType, Reason
from reef.operator.agent_writes import clear_duplicate
from reef.operator.context import NetworkHandle, OperatorContext
from reef.operator.reconcile_agent import read_agent, reconcile_agent, retry_unsettled

log = logging.getLogger(__name__)

CONFLICT_REASON = "Conflict"


@dataclass
class GraceBook:
    """When each suspicious entry was first seen, so nothing is freed on one look."""

    orphans: dict[str, datetime] = field(default_factory=dict)
    surplus: dict[IPAddress, datetime] = field(default_factory=dict)


async def repair_network(ctx: OperatorContext, handle: NetworkHandle, book: GraceBook) -> None:
    allocator = handle.allocator
    grace = timedelta(seconds=ctx.settings.release_grace_seconds)

    async def work(ledger: Ledger, plan: RepairPlan) -> RepairPlan:
        # The full re-read (catching edits and deletions by anyone) already rebuilt
        # missing entries from statuses; what is left needs time or a second look.
        now = datetime.now(UTC)
        changed: set[str] = set()
        for uid in await _confirmed_orphans(ctx, plan.orphaned, book, now, grace):
            changed |= ledger.release(uid, now)
            await ctx.recorder.record(
                handle.body,
                EventType.NORMAL,
                Reason.ORPHAN_RELEASED,
                f"released the addresses of MeshAgent uid {uid}: it no longer exists",
            )
        changed |= _settled_surplus(ledger, plan.surplus, book, now, grace)
        changed |= ledger.collect_garbage(now)
        await allocator.commit(changed)
        return plan

    plan = await allocator.reread(work)
    for duplicate in plan.duplicates:
        for loser in duplicate.losers:
            await _resolve_duplicate(ctx, handle, duplicate.address, duplicate.keeper, loser)
    handle.status.attention = [
        f"MeshAgent {claim.name} holds {claim.address}, which the pool cannot vouch for"
        " (outside the pool, unusable, or under an unreadable ledger entry)"
        for claim in plan.unverifiable[:5]
    ]
    handle.status.touch()
    await retry_unsettled(ctx, allocator.name)


async def _confirmed_orphans(
    ctx: OperatorContext,
    orphaned: tuple[Claim, ...],
    book: GraceBook,
    now: datetime,
    grace: timedelta,
) -> list[str]:
    current = {claim.uid: claim for claim in orphaned}
    for uid in list(book.orphans):
        if uid not in current:
            del book.orphans[uid]
    confirmed = []
    for uid, claim in current.items():
        first_seen = book.orphans.setdefault(uid, now)
        if now - first_seen < grace:
            continue
        if await _owner_gone(ctx, claim):
            confirmed.append(uid)
            del book.orphans[uid]
    return confirmed


async def _owner_gone(ctx: OperatorContext, claim: Claim) -> bool:
    """The re-check: a GET by name, straight from the API server."""
    body = await ctx.kube.read_agent(claim.name)
    return body is None or bool(body["metadata"]["uid"] != claim.uid)


def _settled_surplus(
    ledger: Ledger, surplus: tuple[Claim, ...], book: GraceBook, now: datetime, grace: timedelta
) -> set[str]:
    current = {claim.address for claim in surplus}
    for address in list(book.surplus):
        if address not in current:
            del book.surplus[address]
    changed: set[str] = set()
    for address in current:
        if now - book.surplus.setdefault(address, now) >= grace:
            changed |= ledger.release_address(address, now)
            del book.surplus[address]
    return changed


async def _resolve_duplicate(
    ctx: OperatorContext,
    handle: NetworkHandle,
    address: IPAddress,
    keeper: LiveAgent,
    loser: LiveAgent,
) -> None:
    """Keep the older owner; clear the newer one's status and allocate it again."""
    metrics.CONFLICTS.labels(handle.allocator.name).inc()
    message = (
        f"{address} was also held by the older MeshAgent {keeper.name}, which keeps it;"
        f" {loser.name} gets a new address. Two members with one address break WireGuard"
        " routing silently, so check how the status was changed."
    )
    body = await ctx.kube.read_agent(loser.name)
    if body is None:
        return
    cleared, latest = await clear_duplicate(
        ctx.kube,
        body,
        uid=loser.uid,
        address=str(address),
        reason=CONFLICT_REASON,
        message=message,
    )
    if cleared and latest is not None:
        await ctx.recorder.record(body, EventType.WARNING, Reason.ADDRESS_CONFLICT, message)
        if (agent := read_agent(latest)) is not None:
            await reconcile_agent(ctx, agent, latest)


class RepairScheduler:
    """One repair loop per network; requests made while a pass runs coalesce into one more."""

    def __init__(self, ctx: OperatorContext) -> None:
        self._ctx = ctx
        self._wanted: dict[str, asyncio.Event] = {}
        self._books: dict[str, GraceBook] = {}
        self.stopped = asyncio.Event()

    async def tick(self, interval: float) -> None:
        """Ask for a repair of every network now and then every ``interval`` seconds.

        Waits on a stop event with a deadline (the cadence), so cleanup ends it at once.
        """
        while not self.stopped.is_set():
            for network in list(self._ctx.networks):
                self.request(network)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), timeout=interval)

    def request(self, network: str) -> None:
        wanted = self._wanted.get(network)
        if wanted is None:
            wanted = self._wanted[network] = asyncio.Event()
            book = self._books.setdefault(network, GraceBook())
            self._ctx.spawn(self._loop(network, wanted, book), f"reef-repair-{network}")
        wanted.set()

    async def _loop(self, network: str, wanted: asyncio.Event, book: GraceBook) -> None:
        while network in self._ctx.networks:
            await wanted.wait()
            wanted.clear()
            await run_repair_pass(self._ctx, network, book)
        self._wanted.pop(network, None)


async def run_repair_pass(ctx: OperatorContext, name: str, book: GraceBook) -> None:
    """One pass; exceptions are logged, and the next timer tick tries again."""
    handle = ctx.networks.get(name)
    if handle is None:
        return
    try:
        await repair_network(ctx, handle, book)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("repair of network %s failed; retrying on the next pass", name)
