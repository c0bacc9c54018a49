"""Ledger shards as ConfigMap data (reef.ipam.codec, Ledger.load_shard/encode_shard)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from ipaddress import IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reef.ipam import (
    SHARD_SIZE,
    AllocationRequest,
    EntryState,
    Ledger,
    Outcome,
    Owner,
    ProblemKind,
    allocate,
    decode_ledger,
    decode_owner,
    encode_key,
    encode_owner,
    shard_id_of,
)
from reef.ipam.codec import encode_shard_data
from reef.ipam.model import MAX_NAME_LENGTH, MAX_UID_LENGTH
from reef.ipam.pool import parse_shard_id

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HALF_MIB = 512 * 1024
V4 = "v4-10-0-0-0"

names = st.from_regex(r"[a-z0-9]([-.a-z0-9]{0,40}[a-z0-9])?", fullmatch=True)
uids = st.from_regex(r"[-a-zA-Z0-9]{1,64}", fullmatch=True)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(uids, names, st.sampled_from(EntryState), times)
def test_owner_round_trips_through_its_json_value(
    uid: str, name: str, state: EntryState, since: datetime
) -> None:
    owner = Owner(uid, name, state, since)
    assert decode_owner(encode_owner(owner)) == owner


@settings(max_examples=50)
@given(st.lists(st.tuples(uids, names), min_size=1, max_size=40, unique_by=lambda t: t[0]))
def test_ledger_round_trips_through_its_shards(members: list[tuple[str, str]]) -> None:
    cidrs = ["10.0.0.0/21", "fd00::/64"]
    ledger = Ledger(cidrs)
    batch = allocate(ledger, [AllocationRequest(uid, name) for uid, name in members], T0)
    ledger.release(members[0][0], T0 + timedelta(seconds=7))
    shards = {shard: ledger.encode_shard(shard) for shard in ledger.shard_ids()}
    assert batch.changed_shards <= shards.keys()
    decoded, problems = decode_ledger(cidrs, shards)
    assert problems == []
    assert dict(decoded.entries()) == dict(ledger.entries())
    assert {s: decoded.encode_shard(s) for s in decoded.shard_ids()} == shards


def worst_case_shard(first: int, last: int, make_key: object) -> dict[str, str]:
    """A full shard with the longest names and uids the ledger accepts."""
    assert callable(make_key)
    name = "n" * MAX_NAME_LENGTH
    uid = "u" * MAX_UID_LENGTH
    owner = Owner(uid, name, EntryState.RELEASED, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    return {make_key(value): encode_owner(owner) for value in range(first, last)}


@pytest.mark.parametrize(
    ("cidr", "block_start"),
    [
        ("100.64.0.0/10", "100.127.252.0"),
        ("ffff:ffff:ffff:ffff::/64", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fc00"),
    ],
)
def test_a_full_shard_with_worst_case_entries_stays_under_512_kib(
    cidr: str, block_start: str
) -> None:
    start = int(ip_address(block_start))
    version = ip_address(block_start).version

    def make_key(value: int) -> str:
        return encode_key(ip_address(value) if version == 4 else IPv6Address(value))

    data = worst_case_shard(start, start + SHARD_SIZE, make_key)
    _, problems = decode_ledger([cidr], {shard_id_of(ip_address(block_start)): data})
    kept = {problem.kind for problem in problems}
    assert kept <= {ProblemKind.UNUSABLE_ADDRESS}  # only the broadcast of the v4 /10
    raw_bytes = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    as_json = len(json.dumps({"data": data}).encode())
    assert raw_bytes < HALF_MIB
    assert as_json < HALF_MIB
    print(f"worst-case shard {cidr}: {raw_bytes} bytes of data, {as_json} as JSON")


def test_garbage_is_reported_never_raised_and_its_address_stays_taken() -> None:
    good = encode_owner(Owner("uid-1", "node-1", EntryState.ALLOCATED, T0))
    data = {
        "10.0.0.1": good,
        "10.0.0.2": "{not json",
        "10.0.0.3": json.dumps({"uid": "u", "name": "n"}),
        "10.0.0.4": good.replace("allocated", "borrowed"),
        "10.0.0.5": good.replace("2025-01-01T00:00:00Z", "yesterday"),
        "10.0.0.6": good.replace("node-1", "Node_1"),
        "10.0.0.0": good,
        "10.0.9.9": good,
        "10.0.4.1": good,
        "not-an-ip": good,
        "fd00--1": good,
    }
    ledger, problems = decode_ledger(["10.0.0.0/21"], {V4: data, "v9-zzz": {"a": "b"}})
    by_key = {problem.key: problem.kind for problem in problems}
    assert by_key == {
        "10.0.0.2": ProblemKind.BAD_VALUE,
        "10.0.0.3": ProblemKind.BAD_VALUE,
        "10.0.0.4": ProblemKind.BAD_VALUE,
        "10.0.0.5": ProblemKind.BAD_VALUE,
        "10.0.0.6": ProblemKind.BAD_VALUE,
        "10.0.0.0": ProblemKind.UNUSABLE_ADDRESS,
        "10.0.9.9": ProblemKind.OUTSIDE_POOL,
        "10.0.4.1": ProblemKind.WRONG_SHARD,
        "not-an-ip": ProblemKind.BAD_KEY,
        "fd00--1": ProblemKind.OUTSIDE_POOL,
        "": ProblemKind.UNKNOWN_SHARD,
    }
    assert all(problem.message for problem in problems)
    for damaged in ("10.0.0.2", "10.0.0.6", "10.0.4.1"):
        assert ledger.is_damaged(ip_address(damaged))
    batch = allocate(ledger, [AllocationRequest(f"u{i}", f"n{i}") for i in range(3)], T0)
    assert [str(r.addresses[0]) for r in batch.results] == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]
    assert ledger.encode_shard(V4).items() >= data.items() - {("10.0.0.1", good)}


@given(st.dictionaries(st.text(max_size=45), st.text(max_size=80), max_size=20))
def test_decoding_arbitrary_data_never_raises(data: dict[str, str]) -> None:
    ledger, problems = decode_ledger(["10.0.0.0/24", "fd00::/64"], {V4: data})
    trusted = dict(ledger.entries())
    assert len(trusted) + len(problems) == len(data)


def test_reloading_a_shard_after_a_conflict_discards_the_unwritten_plan() -> None:
    cidrs = ["10.0.0.0/24"]
    ours, _ = decode_ledger(cidrs, {})
    theirs, _ = decode_ledger(cidrs, {})
    allocate(theirs, [AllocationRequest("their-uid", "their-node")], T0)
    mine = allocate(ours, [AllocationRequest("my-uid", "my-node")], T0)
    assert mine.results[0].addresses == theirs.addresses_of("their-uid")  # both planned .1
    # Their write won; ours got a 409: reload the shard and plan again.
    ours.load_shard(V4, theirs.encode_shard(V4))
    again = allocate(ours, [AllocationRequest("my-uid", "my-node")], T0)
    assert again.results[0].outcome is Outcome.ALLOCATED
    assert [str(a) for a in again.results[0].addresses] == ["10.0.0.2"]
    assert again.changed_shards == {V4}
    owner = ours.owner_of(ip_address("10.0.0.1"))
    assert owner is not None
    assert owner.uid == "their-uid"


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["allocate", "release"]), st.integers(0, 29)),
        min_size=1,
        max_size=40,
    )
)
def test_a_shard_encoded_between_changes_equals_one_encoded_from_scratch(
    steps: list[tuple[str, int]],
) -> None:
    """The ledger remembers each entry's text between writes; what it writes after any
    sequence of allocations and releases is what a fresh encoding of the entries gives."""
    ledger = Ledger(["10.0.0.0/24"])
    now = T0
    for verb, member in steps:
        now += timedelta(seconds=1)
        if verb == "allocate":
            allocate(ledger, [AllocationRequest(f"uid-{member}", f"node-{member}")], now)
        else:
            ledger.release(f"uid-{member}", now)
        version, block = parse_shard_id(V4) or (4, 0)
        index = ledger.index(version)
        from_scratch = encode_shard_data(index.blocks.get(block, {}), {}, index.pool)
        assert ledger.encode_shard(V4) == from_scratch
