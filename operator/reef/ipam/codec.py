"""Ledger shard <-> ConfigMap ``data`` (string -> string).

One key per address (see ``pool.encode_key``), the value a compact JSON object::

    "100.64.0.5": {"uid":"6f1c…","name":"node-a","state":"allocated",
                   "since":"2025-01-01T00:00:00Z"}

Decoding never raises. Whatever cannot be trusted becomes a ``Problem`` and is
returned as *kept* raw data: the ledger treats its address as taken and writes
the raw key/value back unchanged, so nothing is silently reassigned or lost.

Size bound: a shard holds at most ``SHARD_SIZE`` (1024) entries. The longest key is
an IPv6 key (39 characters), names are at most 253 characters of [-.a-z0-9] and
uids at most 64 of [-a-zA-Z0-9] (nothing needs JSON escaping), so a value is at
most ~390 bytes and a full shard ~440 KB < 512 KiB, half the 1 MiB object limit.
tests/unit/test_ipam_codec.py measures this with worst-case entries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from reef.ipam.model import EntryState, Owner, Problem, ProblemKind
from reef.ipam.pool import Pool, block_of, decode_key, encode_key

_FIELDS = frozenset({"uid", "name", "state", "since"})


def encode_owner(owner: Owner) -> str:
    return json.dumps(
        {
            "uid": owner.uid,
            "name": owner.name,
            "state": owner.state.value,
            "since": owner.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        separators=(",", ":"),
    )


def decode_owner(value: str) -> Owner:
    """Parse one ledger value; raises ValueError (with a readable message) if it is not one."""
    try:
        raw = json.loads(value)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(raw, dict) or set(raw) != _FIELDS:
        raise ValueError(f"expected an object with exactly the fields {sorted(_FIELDS)}")
    if not all(isinstance(raw[name], str) for name in _FIELDS):
        raise ValueError("every field must be a string")
    if raw["state"] not in {state.value for state in EntryState}:
        raise ValueError(f"state {raw['state']!r} is neither 'allocated' nor 'released'")
    try:
        since = datetime.fromisoformat(raw["since"])
    except ValueError:
        raise ValueError(f"since {raw['since']!r} is not an ISO 8601 time") from None
    return Owner(uid=raw["uid"], name=raw["name"], state=EntryState(raw["state"]), since=since)


@dataclass
class DecodedShard:
    """The trusted entries of one shard, the raw data kept back, and what was wrong."""

    entries: dict[int, Owner] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)
    #: Pool addresses of kept entries: taken until a human repairs them.
    damaged: set[int] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


def decode_shard(
    shard: str, pool: Pool | None, block: int, data: Mapping[str, str]
) -> DecodedShard:
    """Decode the ``data`` of the ConfigMap of ``shard`` (block ``block`` of ``pool``).

    ``pool`` is None when the shard belongs to no pool of the network: all its
    entries are then problems (e.g. a CIDR was removed while addresses were held).
    """
    decoded = DecodedShard()
    for key, value in data.items():
        kind, message, address = _check_entry(pool, block, key)
        if kind is None and address is not None:
            try:
                decoded.entries[address] = decode_owner(value)
                continue
            except (ValueError, TypeError) as error:
                kind, message = ProblemKind.BAD_VALUE, str(error)
        decoded.kept[key] = value
        if address is not None and pool is not None and pool.contains(address):
            decoded.damaged.add(address)
        decoded.problems.append(Problem(shard, key, kind or ProblemKind.BAD_VALUE, message))
    return decoded


def _check_entry(
    pool: Pool | None, block: int, key: str
) -> tuple[ProblemKind | None, str, int | None]:
    try:
        address = decode_key(key)
    except ValueError:
        return ProblemKind.BAD_KEY, f"key {key!r} is not an encoded IP address", None
    value = int(address)
    if pool is None:
        return ProblemKind.UNKNOWN_SHARD, "the shard belongs to no CIDR of the network", value
    if pool.refusal(address) is not None and address in pool.network:
        return ProblemKind.UNUSABLE_ADDRESS, f"{address} is never allocatable", value
    if address.version != pool.version or address not in pool.network:
        return ProblemKind.OUTSIDE_POOL, f"{address} is outside the pool {pool.network}", value
    if block_of(value) != block:
        return ProblemKind.WRONG_SHARD, f"{address} belongs in another shard", value
    return None, "", value


#: What :func:`encode_shard_data` remembers of one entry: the Owner it encoded (by
#: identity) and the key and value it made of it.
EncodedEntry = tuple[Owner, str, str]


def encode_shard_data(
    entries: Mapping[int, Owner],
    kept: Mapping[str, str],
    pool: Pool,
    memo: dict[int, EncodedEntry] | None = None,
) -> dict[str, str]:
    """ConfigMap ``data`` for one shard: its entries, plus the kept raw data verbatim.

    ``memo`` (one per shard, kept by the caller) holds each entry's text from the last
    encoding: an entry whose Owner is the same object is not encoded again. A batch
    changes a few entries of a shard of up to 1024, and encoding all of them again for
    every ledger write was a fifth of the operator's CPU in a burst of 5000 allocations.
    Owners are immutable, so the same object means the same text. The memo holds at
    most one item per address of the shard.
    """
    data = dict(kept)
    for value in sorted(entries):
        owner = entries[value]
        cached = memo.get(value) if memo is not None else None
        if cached is not None and cached[0] is owner:
            data[cached[1]] = cached[2]
            continue
        key, text = encode_key(pool.address(value)), encode_owner(owner)
        if memo is not None:
            memo[value] = (owner, key, text)
        data[key] = text
    return data
