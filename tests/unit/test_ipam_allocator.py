"""The allocation contract, by example (reef.ipam.allocator).

The randomized version of the same rules is in test_ipam_allocator_properties.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest

from reef.ipam import (
    AllocationRequest,
    Ledger,
    Outcome,
    Policy,
    RefusalReason,
    allocate,
    network_stats,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
COOLDOWN = timedelta(minutes=5)
RETENTION = timedelta(hours=24)


def request(n: int, name: str | None = None, *requested: str) -> AllocationRequest:
    return AllocationRequest(
        f"uid-{n}", name or f"node-{n}", tuple(ip_address(a) for a in requested)
    )


def addresses(ledger: Ledger, *requests: AllocationRequest, now: datetime = T0) -> list[str]:
    batch = allocate(ledger, list(requests), now)
    return [",".join(map(str, result.addresses)) for result in batch.results]


def test_a_slash_29_gives_six_addresses_and_the_seventh_request_is_exhausted() -> None:
    ledger = Ledger(["10.0.0.0/29"])
    batch = allocate(ledger, [request(i) for i in range(7)], T0)
    outcomes = [result.outcome for result in batch.results]
    assert outcomes == [Outcome.ALLOCATED] * 6 + [Outcome.POOL_EXHAUSTED]
    assert [str(r.addresses[0]) for r in batch.results[:6]] == [f"10.0.0.{i}" for i in range(1, 7)]
    assert batch.results[6].addresses == ()
    assert "10.0.0.0/29" in batch.results[6].message
    assert network_stats(ledger, T0).exhausted


def test_dual_stack_member_gets_one_address_per_family() -> None:
    ledger = Ledger(["fd00::/64", "100.64.0.0/10"])
    assert addresses(ledger, request(1)) == ["100.64.0.1,fd00::1"]
    assert ledger.addresses_of("uid-1") == (ip_address("100.64.0.1"), ip_address("fd00::1"))


def test_dual_stack_request_is_all_or_nothing_when_one_family_is_exhausted() -> None:
    ledger = Ledger(["10.0.0.0/30", "fd00::/64"])
    allocate(ledger, [request(1), request(2)], T0)
    batch = allocate(ledger, [request(3)], T0)
    assert batch.results[0].outcome is Outcome.POOL_EXHAUSTED
    assert ledger.addresses_of("uid-3") == ()
    assert batch.changed_shards == frozenset()


def test_re_requesting_with_the_same_uid_returns_the_same_addresses_and_writes_nothing() -> None:
    ledger = Ledger(["10.0.0.0/24"])
    first = addresses(ledger, request(1))
    again = allocate(ledger, [request(1), request(1)], T0 + timedelta(hours=1))
    assert [str(r.addresses[0]) for r in again.results] == first * 2
    assert again.changed_shards == frozenset()


def test_a_held_address_never_changes_even_if_requested_addresses_change() -> None:
    ledger = Ledger(["10.0.0.0/24"])
    assert addresses(ledger, request(1)) == ["10.0.0.1"]
    result = allocate(ledger, [request(1, None, "10.0.0.50")], T0).results[0]
    assert result.outcome is Outcome.ALLOCATED
    assert [str(a) for a in result.addresses] == ["10.0.0.1"]
    assert "10.0.0.50" in result.message


def test_recreated_agent_gets_its_old_address_back_within_retention() -> None:
    ledger = Ledger(["10.0.0.0/24"])
    addresses(ledger, request(1, "node-a"), request(2, "node-b"))
    ledger.release("uid-1", T0)
    later = T0 + RETENTION - timedelta(seconds=1)
    assert addresses(ledger, request(9), request(3, "node-a"), now=later) == [
        "10.0.0.3",
        "10.0.0.1",
    ]
    owner = ledger.owner_of(ip_address("10.0.0.1"))
    assert owner is not None
    assert (owner.uid, owner.state) == ("uid-3", "allocated")


def test_name_returning_after_retention_is_a_new_identity() -> None:
    ledger = Ledger(["10.0.0.0/24"])
    addresses(ledger, request(1, "node-a"))
    ledger.release("uid-1", T0)
    assert addresses(ledger, request(2, "node-a"), now=T0 + RETENTION) == ["10.0.0.2"]


def test_released_address_is_not_reused_by_another_identity_during_cooldown() -> None:
    ledger = Ledger(["10.0.0.0/30"])
    addresses(ledger, request(1), request(2))
    ledger.release("uid-1", T0)
    almost = T0 + COOLDOWN - timedelta(seconds=1)
    assert allocate(ledger, [request(3)], almost).results[0].outcome is Outcome.POOL_EXHAUSTED
    assert addresses(ledger, request(3), now=T0 + COOLDOWN) == ["10.0.0.1"]


def test_new_identity_prefers_fresh_then_past_retention_then_longest_free_retained() -> None:
    ledger = Ledger(["10.0.0.0/29"])
    addresses(ledger, *(request(i) for i in range(1, 6)))  # .1-.5 taken, .6 fresh
    ledger.release("uid-2", T0)
    ledger.release("uid-4", T0 + timedelta(hours=1))
    ledger.release("uid-1", T0 + timedelta(hours=2))
    ledger.release("uid-3", T0 + timedelta(hours=3))
    now = T0 + RETENTION + timedelta(minutes=30)  # .2 past retention; .4, .1, .3 retained
    got = addresses(ledger, *(request(i) for i in range(10, 15)), now=now)
    assert got == ["10.0.0.6", "10.0.0.2", "10.0.0.4", "10.0.0.1", "10.0.0.3"]


def test_within_a_batch_new_identities_do_not_take_what_others_asked_for() -> None:
    ledger = Ledger(["10.0.0.0/30"])
    addresses(ledger, request(1, "node-a"))
    ledger.release("uid-1", T0)
    now = T0 + timedelta(hours=1)
    got = addresses(ledger, request(5), request(6, None, "10.0.0.2"), request(7, "node-a"), now=now)
    assert got == ["", "10.0.0.2", "10.0.0.1"]


@pytest.mark.parametrize(
    ("requested", "reason"),
    [
        ("10.0.1.5", RefusalReason.OUTSIDE_POOL),
        ("fd00::5", RefusalReason.OUTSIDE_POOL),
        ("10.0.0.0", RefusalReason.NETWORK_ADDRESS),
        ("10.0.0.255", RefusalReason.BROADCAST_ADDRESS),
        ("10.0.0.1", RefusalReason.IN_USE),
        ("10.0.0.2", RefusalReason.COOLING_DOWN),
    ],
)
def test_requested_address_is_refused_with_a_reason_never_substituted(
    requested: str, reason: RefusalReason
) -> None:
    ledger = Ledger(["10.0.0.0/24"])
    addresses(ledger, request(1), request(2))
    ledger.release("uid-2", T0)
    result = allocate(ledger, [request(3, None, requested)], T0 + COOLDOWN).results[0]
    assert result.outcome is Outcome.REQUESTED_ADDRESS_UNAVAILABLE
    assert result.addresses == ()
    assert [refusal.reason for refusal in result.refusals] == [reason]
    assert requested in result.message
    assert ledger.addresses_of("uid-3") == ()


def test_requested_address_is_granted_when_free_or_released_by_the_same_name() -> None:
    ledger = Ledger(["10.0.0.0/24", "fd00::/64"])
    assert addresses(ledger, request(1, "node-a", "10.0.0.77")) == ["10.0.0.77,fd00::1"]
    ledger.release("uid-1", T0)
    got = addresses(ledger, request(2, "node-a", "10.0.0.77", "fd00::1"), now=T0)
    assert got == ["10.0.0.77,fd00::1"]
    assert addresses(ledger, request(3)) == ["10.0.0.1,fd00::2"]


def test_two_requested_addresses_of_one_family_are_refused() -> None:
    ledger = Ledger(["10.0.0.0/24"])
    result = allocate(ledger, [request(1, None, "10.0.0.5", "10.0.0.6")], T0).results[0]
    assert [r.reason for r in result.refusals] == [RefusalReason.FAMILY_REQUESTED_TWICE]


def test_retained_address_is_refused_to_an_explicit_request_by_another_name() -> None:
    ledger = Ledger(["10.0.0.0/24"], Policy(reuse_cooldown=COOLDOWN, retention=RETENTION))
    addresses(ledger, request(1, "node-a"))
    ledger.release("uid-1", T0)
    inside = allocate(ledger, [request(2, None, "10.0.0.1")], T0 + timedelta(hours=2))
    assert inside.results[0].refusals[0].reason is RefusalReason.COOLING_DOWN
    assert "node-a" in inside.results[0].message
    assert addresses(ledger, request(2, None, "10.0.0.1"), now=T0 + RETENTION) == ["10.0.0.1"]


def test_release_of_an_unknown_uid_is_a_no_op() -> None:
    ledger = Ledger(["10.0.0.0/24"])
    assert ledger.release("nobody", T0) == frozenset()


def test_garbage_collection_forgets_only_entries_past_retention_and_cooldown() -> None:
    ledger = Ledger(["10.0.0.0/24"])
    addresses(ledger, request(1), request(2), request(3))
    ledger.release("uid-1", T0)
    ledger.release("uid-2", T0 + timedelta(hours=1))
    assert ledger.collect_garbage(T0 + RETENTION) == frozenset({"v4-10-0-0-0"})
    assert ledger.owner_of(ip_address("10.0.0.1")) is None
    assert ledger.owner_of(ip_address("10.0.0.2")) is not None
    assert addresses(ledger, request(4), now=T0 + RETENTION) == ["10.0.0.1"]


def test_stats_count_allocated_reserved_and_warn_at_ninety_percent() -> None:
    ledger = Ledger(["10.0.0.0/28"])  # 14 usable
    addresses(ledger, *(request(i) for i in range(13)))
    ledger.release("uid-0", T0)
    stats = network_stats(ledger, T0 + timedelta(minutes=1))
    assert (stats.capacity, stats.allocated, stats.reserved) == (14, 12, 1)
    assert stats.nearly_exhausted
    assert not stats.exhausted
    assert stats.pools[0].available == 1
    later = network_stats(ledger, T0 + RETENTION)
    assert (later.reserved, later.utilisation) == (0, 12 / 14)
