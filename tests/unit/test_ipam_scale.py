"""Allocation cost follows the number of entries, never the pool size.

Evidence by structure sizes, not by timing (the machine is shared): after 100k
allocations from a /10 (4 Mi addresses) no index holds more than the entries made,
the frontier moved exactly as far as addresses were handed out, and a /64 is as
cheap as a /10.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

from reef.ipam import SHARD_SIZE, AllocationRequest, Ledger, allocate, network_stats
from reef.ipam.index import PoolIndex

T0 = datetime(2025, 1, 1, tzinfo=UTC)
COUNT = 100_000
BATCH = 1_000


def structure_sizes(index: PoolIndex) -> int:
    return (
        sum(len(block) for block in index.blocks.values())
        + len(index.holes)
        + len(index.released_heap)
        + len(index.by_uid)
        + len(index.released_by_name)
        + len(index.damaged)
    )


def allocate_many(ledger: Ledger, count: int, prefix: str, now: datetime = T0) -> None:
    for start in range(0, count, BATCH):
        requests = [
            AllocationRequest(f"{prefix}{i}", f"{prefix}{i}") for i in range(start, start + BATCH)
        ]
        assert all(r.addresses for r in allocate(ledger, requests, now).results)


def test_hundred_thousand_allocations_from_a_slash_10_touch_no_pool_sized_structure() -> None:
    ledger = Ledger(["100.64.0.0/10"])
    # A static address near the top must not drag the frontier (or a scan) up to it.
    top = ip_address("100.127.255.200")
    static = allocate(ledger, [AllocationRequest("static", "static", (top,))], T0)
    assert static.results[0].addresses == (top,)
    allocate_many(ledger, COUNT, "n")
    index = ledger.index(4)
    assert index.frontier - index.pool.first == COUNT - 1
    assert len(index.blocks) == COUNT // SHARD_SIZE + 2
    assert structure_sizes(index) == 2 * (COUNT + 1)  # entries + by-uid, nothing else
    assert network_stats(ledger, T0).allocated == COUNT + 1


def test_reuse_after_churn_keeps_indexes_proportional_to_entries() -> None:
    ledger = Ledger(["100.64.0.0/10"])
    allocate_many(ledger, 20_000, "a")
    for i in range(0, 20_000, 2):
        ledger.release(f"a{i}", T0)
    ledger.collect_garbage(T0 + timedelta(days=2))
    allocate_many(ledger, 10_000, "b", T0 + timedelta(days=2))
    index = ledger.index(4)
    assert index.frontier - index.pool.first == 20_000 - 1  # reused the holes first
    assert len(index.holes) <= 10_000
    assert structure_sizes(index) <= 4 * 20_000


def test_a_slash_64_costs_the_same_as_a_small_pool() -> None:
    ledger = Ledger(["fd00::/64"])
    allocate_many(ledger, 10_000, "v")
    index = ledger.index(6)
    assert index.pool.capacity == 2**64 - 1
    assert structure_sizes(index) == 2 * 10_000
    assert network_stats(ledger, T0).capacity == 2**63 - 1  # capped for an int64 status field
