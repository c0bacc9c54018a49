"""Pool usage for the MeshNetwork status and its PoolNearlyExhausted/PoolExhausted conditions.

Each member takes one address per pool, so on a dual-stack network the number of
members that fit is bounded by the smaller pool. The network-level figures are
therefore per-member: capacity is the smallest pool's capacity (capped at the
int64 maximum that a Kubernetes integer field holds - a /64 has 2^64), and the
other counts and the utilisation are those of the fullest pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reef.ipam.ledger import Ledger
from reef.ipam.model import EntryState, normalise_time

INT64_MAX = 2**63 - 1
#: PoolNearlyExhausted is True at or above this utilisation.
NEARLY_EXHAUSTED = 0.9


@dataclass(frozen=True, slots=True)
class PoolStats:
    cidr: str
    capacity: int
    allocated: int
    #: Released entries still protected (inside cool-down or retention).
    reserved: int
    #: The part of ``reserved`` still inside the cool-down: not even a full pool reuses them.
    cooling_down: int
    #: Addresses covered by unreadable ledger entries (taken until repaired).
    unusable: int

    @property
    def utilisation(self) -> float:
        """Share of the pool that is allocated, reserved or unusable (0.0-1.0)."""
        return (self.allocated + self.reserved + self.unusable) / self.capacity

    @property
    def available(self) -> int:
        """Addresses a new identity could get now (retained ones count: see allocator)."""
        return self.capacity - self.allocated - self.cooling_down - self.unusable


@dataclass(frozen=True, slots=True)
class NetworkStats:
    pools: tuple[PoolStats, ...]

    @property
    def capacity(self) -> int:
        return min(INT64_MAX, *(pool.capacity for pool in self.pools))

    @property
    def allocated(self) -> int:
        return max(pool.allocated for pool in self.pools)

    @property
    def reserved(self) -> int:
        return max(pool.reserved for pool in self.pools)

    @property
    def utilisation(self) -> float:
        return max(pool.utilisation for pool in self.pools)

    @property
    def nearly_exhausted(self) -> bool:
        return self.utilisation >= NEARLY_EXHAUSTED

    @property
    def exhausted(self) -> bool:
        return any(pool.available <= 0 for pool in self.pools)


def network_stats(ledger: Ledger, now: datetime) -> NetworkStats:
    """Usage of every pool; O(released entries), meant for status updates, not per request."""
    now = normalise_time(now)
    policy = ledger.policy
    pools = []
    for pool in ledger.pools:
        index = ledger.index(pool.version)
        reserved = cooling = 0
        for values in index.released_by_name.values():
            for value in values:
                owner = index.get(value)
                if owner is None or owner.state is not EntryState.RELEASED:
                    continue
                if now < owner.since + policy.forget_after:
                    reserved += 1
                if now < owner.since + policy.reuse_cooldown:
                    cooling += 1
        unusable = sum(1 for value in index.damaged if pool.contains(value))
        pools.append(
            PoolStats(
                str(pool.network), pool.capacity, index.allocated_count, reserved, cooling, unusable
            )
        )
    return NetworkStats(tuple(pools))
