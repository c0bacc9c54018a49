"""The entries of one pool and the indexes that make allocation O(log n).

Nothing here is proportional to the pool size: memory and time follow the number
of ledger entries and the number of operations.

* **fresh frontier** - the lowest address that has never been looked at. It only moves
  forward, skipping addresses that hold an entry (requested/static ones, entries
  loaded from the ledger), so handing out never-used addresses is amortised O(1).
* **holes** - a min-heap of addresses below the frontier that became entry-less
  again (garbage-collected, or a planned entry discarded by a reloaded shard).
  Together with the frontier this yields "the lowest address without an entry",
  which is also what a freshly started operator's frontier finds: the order does
  not depend on the operator's uptime.
* **released heap** - (since, address) of released entries, oldest first: the
  longest-free reusable address is on top (Calico's lesson).
* **by uid / by name** - allocated entries per uid (idempotency) and released
  entries per name (sticky retention).

Heaps are lazy: an item whose entry changed is discarded when it reaches the top,
and a heap is rebuilt when stale items outnumber live ones.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from reef.ipam.codec import DecodedShard
from reef.ipam.model import EntryState, Owner
from reef.ipam.pool import Pool, block_of
from reef.multimap import discard_member


class PoolIndex:
    """Entries of one pool, grouped by shard block, with their allocation indexes."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.blocks: dict[int, dict[int, Owner]] = {}
        self.kept: dict[int, dict[str, str]] = {}
        self.damaged_by_block: dict[int, set[int]] = {}
        self.damaged: Counter[int] = Counter()
        self.by_uid: dict[str, set[int]] = {}
        self.released_by_name: dict[str, set[int]] = {}
        self.frontier = pool.first
        self.holes: list[int] = []
        self.released_heap: list[tuple[datetime, int]] = []
        self.allocated_count = 0
        self.released_count = 0

    # -- reading -------------------------------------------------------------------------

    def get(self, value: int) -> Owner | None:
        block = self.blocks.get(block_of(value))
        return None if block is None else block.get(value)

    def is_taken(self, value: int) -> bool:
        return self.get(value) is not None or value in self.damaged

    def entries(self) -> Iterator[tuple[int, Owner]]:
        for block in self.blocks.values():
            yield from block.items()

    def allocated_of(self, uid: str) -> list[int]:
        return sorted(self.by_uid.get(uid, ()))

    def released_of(self, name: str) -> list[int]:
        return sorted(self.released_by_name.get(name, ()))

    # -- writing -------------------------------------------------------------------------

    def put(self, value: int, owner: Owner) -> None:
        """Set the entry of ``value`` (an address of this pool)."""
        self._unindex(value)
        self.blocks.setdefault(block_of(value), {})[value] = owner
        self._index(value, owner)

    def remove(self, value: int) -> None:
        block_id = block_of(value)
        block = self.blocks.get(block_id)
        if block is None or value not in block:
            return
        self._unindex(value)
        del block[value]
        if not block:
            del self.blocks[block_id]
        if value < self.frontier and value not in self.damaged:
            heapq.heappush(self.holes, value)

    def load_block(self, block_id: int, decoded: DecodedShard) -> None:
        """Replace everything known about one shard block with freshly decoded data."""
        for value in list(self.blocks.get(block_id, {})):
            self.remove(value)
        for value in self.damaged_by_block.pop(block_id, set()):
            self.damaged[value] -= 1
            if self.damaged[value] <= 0:
                del self.damaged[value]
                if value < self.frontier and not self.is_taken(value):
                    heapq.heappush(self.holes, value)
        self.kept.pop(block_id, None)
        if decoded.kept:
            self.kept[block_id] = dict(decoded.kept)
        if decoded.damaged:
            self.damaged_by_block[block_id] = set(decoded.damaged)
            self.damaged.update(decoded.damaged)
        for value, owner in decoded.entries.items():
            self.put(value, owner)

    def _index(self, value: int, owner: Owner) -> None:
        if owner.state is EntryState.ALLOCATED:
            self.by_uid.setdefault(owner.uid, set()).add(value)
            self.allocated_count += 1
        else:
            self.released_by_name.setdefault(owner.name, set()).add(value)
            self.released_count += 1
            heapq.heappush(self.released_heap, (owner.since, value))
            if len(self.released_heap) > 2 * self.released_count + 64:
                self._rebuild_released_heap()

    def _unindex(self, value: int) -> None:
        owner = self.get(value)
        if owner is None:
            return
        if owner.state is EntryState.ALLOCATED:
            discard_member(self.by_uid, owner.uid, value)
            self.allocated_count -= 1
        else:
            discard_member(self.released_by_name, owner.name, value)
            self.released_count -= 1

    def _rebuild_released_heap(self) -> None:
        self.released_heap = [
            (owner.since, value)
            for values in self.released_by_name.values()
            for value in values
            if (owner := self.get(value)) is not None
        ]
        heapq.heapify(self.released_heap)

    # -- choosing ------------------------------------------------------------------------

    def peek_fresh(self) -> int | None:
        """The lowest address without an entry, or None if every address has one."""
        while self.holes:
            value = self.holes[0]
            if not self.is_taken(value):
                return value
            heapq.heappop(self.holes)
        while self.frontier <= self.pool.last and self.is_taken(self.frontier):
            self.frontier += 1
        return self.frontier if self.frontier <= self.pool.last else None

    def peek_released(self) -> tuple[datetime, int] | None:
        """The released entry that has been free the longest, or None."""
        while self.released_heap:
            since, value = self.released_heap[0]
            owner = self.get(value)
            if owner is not None and owner.state is EntryState.RELEASED and owner.since == since:
                return since, value
            heapq.heappop(self.released_heap)
        return None
