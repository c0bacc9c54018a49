"""Pure address allocation for reef: pools, the sharded ledger codec, the allocator,
repair planning and usage statistics. No I/O and no clock: time comes in as ``now``.

Typical use by the operator::

    shards = {cm.labels[shard_label]: cm.data for cm in listed_configmaps}  # shard id -> data
    ledger, problems = decode_ledger(cidrs, shards, Policy(cooldown, retention))
    batch = allocate(ledger, [AllocationRequest(uid, name, requested)], now)
    for shard in batch.changed_shards:  # replace (PUT) with resourceVersion, not a merge patch
        store.write(shard, ledger.encode_shard(shard))  # the operator names the ConfigMap

See ``reef.ipam.ledger`` for the write/retry protocol and ``reef.ipam.allocator`` for
the allocation order (fresh first, longest-free reuse, sticky names, cool-down).
Constructors raise ValueError on invalid input (a CIDR list, a uid or name, a naive
datetime); decoding, allocation and repair report problems, refusals and exhaustion
as values and never raise.
"""

from reef.ipam.allocator import allocate
from reef.ipam.codec import decode_owner, encode_owner
from reef.ipam.ledger import Ledger, decode_ledger
from reef.ipam.model import (
    AllocationBatch,
    AllocationRequest,
    AllocationResult,
    EntryState,
    IPAddress,
    IPNetwork,
    Outcome,
    Owner,
    Policy,
    Problem,
    ProblemKind,
    Refusal,
    RefusalReason,
)
from reef.ipam.pool import (
    SHARD_SIZE,
    Pool,
    decode_key,
    encode_key,
    parse_shard_id,
    shard_id_of,
)
from reef.ipam.repair import (
    Claim,
    Duplicate,
    LiveAgent,
    RepairPlan,
    plan_repair,
    recreate_entries,
)
from reef.ipam.stats import NEARLY_EXHAUSTED, NetworkStats, PoolStats, network_stats

__all__ = [
    "NEARLY_EXHAUSTED",
    "SHARD_SIZE",
    "AllocationBatch",
    "AllocationRequest",
    "AllocationResult",
    "Claim",
    "Duplicate",
    "EntryState",
    "IPAddress",
    "IPNetwork",
    "Ledger",
    "LiveAgent",
    "NetworkStats",
    "Outcome",
    "Owner",
    "Policy",
    "Pool",
    "PoolStats",
    "Problem",
    "ProblemKind",
    "Refusal",
    "RefusalReason",
    "RepairPlan",
    "allocate",
    "decode_key",
    "decode_ledger",
    "decode_owner",
    "encode_key",
    "encode_owner",
    "network_stats",
    "parse_shard_id",
    "plan_repair",
    "recreate_entries",
    "shard_id_of",
]
