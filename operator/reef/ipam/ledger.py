"""The operator's in-memory replica of a network's ledger (all its shard ConfigMaps).

Protocol (the operator owns all I/O; this class never does any):

1. List every ledger ConfigMap of the network, then ``decode_ledger`` them all;
   never allocate before the whole ledger is loaded (Cilium's lesson).
2. Mutate through ``allocate`` (reef.ipam.allocator), ``release``, ``assign``,
   ``release_address`` and ``collect_garbage``; each returns the ids of the shards it
   changed. ``encode_shard`` gives the ConfigMap ``data`` to write with a
   compare-and-swap on resourceVersion.
3. If a write fails (409, or any error whose outcome is unknown), re-read that
   ConfigMap and ``load_shard`` it: this discards the unwritten plan for that shard
   and takes in what the other writer did. Then call ``allocate`` again with the
   same batch: it is idempotent per uid, so only the lost allocations are re-planned.
   Report a request's addresses only once every shard it touched is written.

Updates happen in place because copying a ledger of millions of entries per batch
would make every allocation O(n); the values handed out (Owner, results) are frozen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from reef.ipam.codec import EncodedEntry, decode_shard, encode_shard_data
from reef.ipam.index import PoolIndex
from reef.ipam.model import (
    EntryState,
    IPAddress,
    IPNetwork,
    Owner,
    Policy,
    Problem,
    ProblemKind,
    normalise_time,
)
from reef.ipam.pool import Pool, block_of, parse_shard_id, shard_id, shard_id_of


class Ledger:
    """Entries of every pool of one MeshNetwork (at most one IPv4 and one IPv6 CIDR)."""

    def __init__(self, cidrs: Sequence[str | IPNetwork], policy: Policy | None = None) -> None:
        pools = [Pool.from_cidr(cidr) for cidr in cidrs]
        versions = sorted(pool.version for pool in pools)
        if versions not in ([4], [6], [4, 6]):
            raise ValueError(f"need 1-2 CIDRs, at most one per IP family; got {list(cidrs)}")
        self.policy = policy or Policy()
        self._indexes = {pool.version: PoolIndex(pool) for pool in sorted(pools, key=_version)}
        #: Per shard, the text of each entry as last encoded (reef.ipam.codec).
        self._encoded: dict[str, dict[int, EncodedEntry]] = {}

    # -- structure -----------------------------------------------------------------------

    @property
    def pools(self) -> tuple[Pool, ...]:
        """The pools, IPv4 first."""
        return tuple(index.pool for index in self._indexes.values())

    def index(self, version: int) -> PoolIndex:
        return self._indexes[version]

    def index_of(self, address: IPAddress) -> PoolIndex | None:
        """The index of the pool containing ``address`` (usable or not), if any."""
        index = self._indexes.get(address.version)
        return index if index is not None and address in index.pool.network else None

    def shard_ids(self) -> list[str]:
        """Ids of every shard that has content (entries or kept raw data)."""
        return sorted(
            shard_id(version, block)
            for version, index in self._indexes.items()
            for block in index.blocks.keys() | index.kept.keys()
        )

    # -- codec ---------------------------------------------------------------------------

    def load_shard(self, shard: str, data: Mapping[str, str]) -> list[Problem]:
        """Replace one shard with the ``data`` of its ConfigMap; returns what was wrong."""
        parsed = parse_shard_id(shard)
        if parsed is None:
            return [Problem(shard, "", ProblemKind.UNKNOWN_SHARD, "not a reef shard id")]
        version, block = parsed
        index = self._indexes.get(version)
        pool = index.pool if index is not None else None
        network = pool.network if pool is not None else None
        if network is not None and not (
            block_of(int(network.network_address)) <= block <= block_of(int(network[-1]))
        ):
            pool = None
        decoded = decode_shard(shard, pool, block, data)
        if index is not None and pool is not None:
            index.load_block(block, decoded)
        return decoded.problems

    def encode_shard(self, shard: str) -> dict[str, str]:
        """The ConfigMap ``data`` for ``shard`` (empty if the shard has nothing)."""
        parsed = parse_shard_id(shard)
        index = self._indexes.get(parsed[0]) if parsed is not None else None
        if parsed is None or index is None:
            return {}
        block = parsed[1]
        memo = self._encoded.setdefault(shard, {})
        return encode_shard_data(
            index.blocks.get(block, {}), index.kept.get(block, {}), index.pool, memo
        )

    # -- reading -------------------------------------------------------------------------

    def owner_of(self, address: IPAddress) -> Owner | None:
        index = self.index_of(address)
        return None if index is None else index.get(int(address))

    def is_damaged(self, address: IPAddress) -> bool:
        """True if an untrusted ledger entry covers ``address`` (it stays taken)."""
        index = self.index_of(address)
        return index is not None and int(address) in index.damaged

    def addresses_of(self, uid: str) -> tuple[IPAddress, ...]:
        """Addresses allocated to ``uid``, IPv4 first."""
        return tuple(
            index.pool.address(value)
            for index in self._indexes.values()
            for value in index.allocated_of(uid)
        )

    def entries(self) -> Iterator[tuple[IPAddress, Owner]]:
        for index in self._indexes.values():
            for value, owner in index.entries():
                yield index.pool.address(value), owner

    # -- writing -------------------------------------------------------------------------

    def assign(self, address: IPAddress, uid: str, name: str, now: datetime) -> frozenset[str]:
        """Record ``address`` as allocated to (uid, name), whatever it was before.

        For repair only (rebuilding the ledger from statuses, settling a conflict);
        allocation goes through reef.ipam.allocator. An address outside every pool or a
        never-usable one is ignored (returns no shard).
        """
        index = self.index_of(address)
        if index is None or index.pool.refusal(address) is not None:
            return frozenset()
        current = index.get(int(address))
        if current is not None and current.state is EntryState.ALLOCATED and current.uid == uid:
            return frozenset()
        index.put(int(address), Owner(uid, name, EntryState.ALLOCATED, now))
        return frozenset({shard_id_of(address)})

    def release(self, uid: str, now: datetime) -> frozenset[str]:
        """Mark every address allocated to ``uid`` released (since=now). Unknown uid: no-op."""
        changed: set[str] = set()
        for index in self._indexes.values():
            for value in index.allocated_of(uid):
                changed |= self.release_address(index.pool.address(value), now)
        return frozenset(changed)

    def release_address(self, address: IPAddress, now: datetime) -> frozenset[str]:
        """Release one allocated address (e.g. a surplus entry found by repair)."""
        index = self.index_of(address)
        owner = None if index is None else index.get(int(address))
        if index is None or owner is None or owner.state is EntryState.RELEASED:
            return frozenset()
        index.put(int(address), Owner(owner.uid, owner.name, EntryState.RELEASED, now))
        return frozenset({shard_id_of(address)})

    def collect_garbage(self, now: datetime) -> frozenset[str]:
        """Forget released entries older than max(retention, cooldown): they protect nothing.

        O(released entries); meant for the periodic repair pass, not per allocation.
        """
        horizon = normalise_time(now) - self.policy.forget_after
        changed: set[str] = set()
        for index in self._indexes.values():
            expired = [
                value
                for values in index.released_by_name.values()
                for value in values
                if (owner := index.get(value)) is not None and owner.since <= horizon
            ]
            for value in expired:
                index.remove(value)
                changed.add(shard_id_of(index.pool.address(value)))
        return frozenset(changed)


def decode_ledger(
    cidrs: Sequence[str | IPNetwork],
    shards: Mapping[str, Mapping[str, str]],
    policy: Policy | None = None,
) -> tuple[Ledger, list[Problem]]:
    """Build the ledger from every shard ConfigMap's ``data``, keyed by shard id."""
    ledger = Ledger(cidrs, policy)
    problems: list[Problem] = []
    for shard, data in sorted(shards.items()):
        problems.extend(ledger.load_shard(shard, data))
    return ledger, problems


def _version(pool: Pool) -> int:
    return pool.version
