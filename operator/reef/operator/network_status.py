"""MeshNetwork status: pool usage, member reachability and the network's conditions.

Conditions: Ready, PoolNearlyExhausted, PoolExhausted, MembersReachable (which member
the others cannot reach, counted from their reports; see reef.operator.reachability).

The operator is the only writer of a MeshNetwork's status. ``touch()`` asks for a
refresh; refreshes that are asked for while one is being written, or within
:data:`STATUS_WRITE_INTERVAL` after it, coalesce into one more write, so a burst of
allocations costs about a status write a second, not one each. Nothing is written when
nothing changed.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reef.api import names
from reef.api.conditions import CONDITION_FALSE, CONDITION_TRUE, set_condition
from reef.ipam import Ledger, NetworkStats, network_stats
from reef.kube.client import Kube
from reef.kube.events import EventRecorder
from reef.observability import metrics
from reef.observability.events import EventType, Reason
from reef.operator.coalesced import run_coalesced
from reef.operator.network_allocator import NetworkAllocator
from reef.operator.reachability import Reachability

log = logging.getLogger(__name__)

READY = "Ready"
POOL_NEARLY_EXHAUSTED = "PoolNearlyExhausted"
POOL_EXHAUSTED = "PoolExhausted"
MEMBERS_REACHABLE = "MembersReachable"
#: The least time between two writes of a MeshNetwork's status, in seconds.
STATUS_WRITE_INTERVAL = 1.0


class NetworkStatusWriter:
    def __init__(
        self,
        kube: Kube,
        recorder: EventRecorder,
        allocator: NetworkAllocator,
        body: dict[str, Any],
        ready_count: Callable[[str], int],
        *,
        reach: Callable[[str], Reachability],
    ) -> None:
        self._reach = reach
        self._kube = kube
        self._recorder = recorder
        self._allocator = allocator
        self._body = body
        self._ready_count = ready_count
        self._status: dict[str, Any] = dict(body.get("status") or {})
        self._wanted = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"reef-status-{allocator.name}")
        #: Extra reasons the network is not Ready (e.g. unverifiable status addresses).
        self.attention: list[str] = []
        #: Set while a deletion waits for members (reef.operator.network_deletion).
        self.deletion: str | None = None
        #: Collisions of the pool with ranges in use (reef.operator.preflight).
        self.overlaps: list[str] = []
        #: Seconds between two status writes at the least.
        self.min_interval = STATUS_WRITE_INTERVAL

    def update_body(self, body: dict[str, Any]) -> None:
        self._body = body
        self.touch()

    def touch(self) -> None:
        self._wanted.set()

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        await run_coalesced(
            self._wanted,
            self._refresh,
            log=log,
            failure=f"could not update the status of MeshNetwork {self._allocator.name}",
        )

    async def _refresh(self) -> None:
        async def read(ledger: Ledger) -> NetworkStats:
            return network_stats(ledger, datetime.now(UTC))

        stats = await self._allocator.exclusive(read)
        name = self._allocator.name
        metrics.POOL_UTILISATION.labels(name).set(stats.utilisation)
        metrics.LEDGER_PROBLEMS.labels(name).set(len(self._allocator.problems))
        generation = int(self._body["metadata"].get("generation") or 0)
        status = self._compose(stats, generation)
        if status == self._status:
            return
        await self._announce_flips(status)
        await self._kube.patch_status(names.MESH_NETWORK_PLURAL, name, {"status": status})
        self._status = status
        # A rate limit, not a wait for something: every watcher of MeshNetworks (each
        # node's agent among them) receives each of these writes, and in a burst of
        # allocations a write per round-trip would be tens a second. Requests made
        # meanwhile coalesce into the one refresh after the pause.
        await asyncio.sleep(self.min_interval)

    def _compose(self, stats: NetworkStats, generation: int) -> dict[str, Any]:
        conditions = list(self._status.get("conditions") or [])
        problems = self._allocator.problems
        if self.deletion is not None:
            ready = (CONDITION_FALSE, "DeletionWaitsForMembers", self.deletion)
        elif self.overlaps:
            more = len(self.overlaps) - 5
            ready = (
                CONDITION_FALSE,
                "PoolOverlaps",
                "; ".join(self.overlaps[:5])
                + (f"; and {more} more" if more > 0 else "")
                + ". Traffic to those addresses would be routed into the mesh: create a"
                " MeshNetwork with a pool that overlaps nothing (e.g. inside 100.64.0.0/10)"
                " and move the members, or change the colliding range.",
            )
        elif problems:
            keys = ", ".join(f"{p.shard}/{p.key}" for p in problems[:5])
            ready = (
                CONDITION_FALSE,
                "LedgerEntryUnreadable",
                f"{len(problems)} ledger entries cannot be read ({keys}); their addresses are"
                " kept out of the pool. Fix or delete those keys in the reef-ipam ConfigMaps.",
            )
        elif self.attention:
            ready = (CONDITION_FALSE, "NeedsAttention", "; ".join(self.attention))
        else:
            ready = (CONDITION_TRUE, "Ready", "the ledger is readable and consistent")
        reach = self._reach(self._allocator.name)
        percent = f"{stats.utilisation:.0%}"
        usage = f"{stats.allocated} allocated, {stats.reserved} reserved of {stats.capacity}"
        for type_, status, reason, message in (
            (READY, *ready),
            (
                POOL_NEARLY_EXHAUSTED,
                CONDITION_TRUE if stats.nearly_exhausted else CONDITION_FALSE,
                "UtilisationHigh" if stats.nearly_exhausted else "UtilisationNormal",
                f"{percent} of the pool in use ({usage})",
            ),
            (
                POOL_EXHAUSTED,
                CONDITION_TRUE if stats.exhausted else CONDITION_FALSE,
                "NoAddressLeft" if stats.exhausted else "AddressesAvailable",
                f"{usage}"
                + (
                    "; add an IPv6 CIDR in a new MeshNetwork or delete unused MeshAgents"
                    if stats.exhausted
                    else ""
                ),
            ),
            (MEMBERS_REACHABLE, reach.status, reach.reason, reach.message),
        ):
            conditions = set_condition(
                conditions,
                type_=type_,
                status=status,
                reason=reason,
                message=message,
                observed_generation=generation,
            )
        return {
            "capacity": stats.capacity,
            "allocated": stats.allocated,
            "reserved": stats.reserved,
            "agentsReady": self._ready_count(self._allocator.name),
            "unreachableMembers": reach.members,
            "observedGeneration": generation,
            "conditions": conditions,
        }

    async def _announce_flips(self, status: dict[str, Any]) -> None:
        """An Event when the pool becomes (nearly) exhausted, not on every write."""
        before = {c["type"]: c["status"] for c in self._status.get("conditions") or []}
        for condition in status["conditions"]:
            became_true = (
                condition["status"] == CONDITION_TRUE
                and before.get(condition["type"]) != CONDITION_TRUE
            )
            if not became_true:
                continue
            if condition["type"] == POOL_EXHAUSTED:
                reason = Reason.POOL_EXHAUSTED
            elif condition["type"] == POOL_NEARLY_EXHAUSTED:
                reason = Reason.POOL_NEARLY_EXHAUSTED
            else:
                continue
            await self._recorder.record(self._body, EventType.WARNING, reason, condition["message"])
