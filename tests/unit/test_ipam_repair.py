"""Repair planning: ledger <-> statuses <-> live uids (reef.ipam.repair)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

from reef.ipam import (
    AllocationRequest,
    Claim,
    Ledger,
    LiveAgent,
    allocate,
    decode_ledger,
    plan_repair,
    recreate_entries,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CIDRS = ["10.0.0.0/24", "fd00::/64"]


def agent(n: int, *addresses: str, age: int = 0) -> LiveAgent:
    created = T0 - timedelta(hours=age)
    return LiveAgent(f"uid-{n}", f"node-{n}", tuple(ip_address(a) for a in addresses), created)


def ledger_with(*members: int) -> Ledger:
    ledger = Ledger(CIDRS)
    allocate(ledger, [AllocationRequest(f"uid-{n}", f"node-{n}") for n in members], T0)
    return ledger


def test_consistent_world_needs_no_repair() -> None:
    ledger = ledger_with(1, 2)
    plan = plan_repair(ledger, [agent(1, "10.0.0.1", "fd00::1"), agent(2, "10.0.0.2", "fd00::2")])
    assert plan == type(plan)()


def test_deleted_ledger_is_rebuilt_from_statuses() -> None:
    agents = [agent(1, "10.0.0.7", "fd00::9"), agent(2, "10.0.0.3", "fd00::4")]
    ledger, _ = decode_ledger(CIDRS, {})
    plan = plan_repair(ledger, agents)
    assert {(str(c.address), c.uid) for c in plan.recreate} == {
        ("10.0.0.7", "uid-1"),
        ("fd00::9", "uid-1"),
        ("10.0.0.3", "uid-2"),
        ("fd00::4", "uid-2"),
    }
    changed = recreate_entries(ledger, plan, T0)
    assert changed == {"v4-10-0-0-0", "v6-fd000000000000000000000000000000"}
    assert plan_repair(ledger, agents) == type(plan)()
    fresh = allocate(ledger, [AllocationRequest("uid-3", "node-3")], T0).results[0]
    assert [str(a) for a in fresh.addresses] == ["10.0.0.1", "fd00::1"]


def test_crash_between_ledger_and_status_write_is_adopted_not_reallocated() -> None:
    ledger = ledger_with(1)
    plan = plan_repair(ledger, [agent(1)])
    assert plan == type(plan)()  # nothing to release or rebuild: its entries stay
    again = allocate(ledger, [AllocationRequest("uid-1", "node-1")], T0).results[0]
    assert [str(a) for a in again.addresses] == ["10.0.0.1", "fd00::1"]


def test_entries_of_vanished_uids_are_release_candidates_only() -> None:
    ledger = ledger_with(1, 2)
    plan = plan_repair(ledger, [agent(2, "10.0.0.2", "fd00::2")])
    assert plan.orphaned == (
        Claim(ip_address("10.0.0.1"), "uid-1", "node-1"),
        Claim(ip_address("fd00::1"), "uid-1", "node-1"),
    )
    assert recreate_entries(ledger, plan, T0) == frozenset()
    assert ledger.addresses_of("uid-1") != ()


def test_true_duplicate_keeps_the_older_owner_and_reallocates_the_newer() -> None:
    ledger = ledger_with(2)  # 10.0.0.1 has no ledger owner: age decides
    older = agent(2, "10.0.0.1", "fd00::2", age=5)
    newer = agent(1, "10.0.0.1", "fd00::1", age=1)
    plan = plan_repair(ledger, [newer, older])
    assert len(plan.duplicates) == 1
    assert plan.duplicates[0].keeper == older
    assert plan.duplicates[0].losers == (newer,)
    recreate_entries(ledger, plan, T0)
    owner = ledger.owner_of(ip_address("10.0.0.1"))
    assert owner is not None
    assert owner.uid == "uid-2"
    redo = allocate(ledger, [AllocationRequest("uid-1", "node-1")], T0).results[0]
    assert str(redo.addresses[0]) != "10.0.0.1"


def test_duplicate_is_kept_by_the_ledger_owner_even_if_created_later() -> None:
    """The ledger is the allocator's CAS record of who got the address first; a status
    copied by hand onto an older object must not win over it."""
    ledger = ledger_with(1, 2)
    owner = agent(1, "10.0.0.1", "fd00::1", age=1)
    copier = agent(2, "10.0.0.1", "fd00::2", age=5)
    plan = plan_repair(ledger, [copier, owner])
    assert plan.duplicates[0].keeper == owner
    assert plan.duplicates[0].losers == (copier,)
    assert Claim(ip_address("10.0.0.2"), "uid-2", "node-2") in plan.surplus


def test_duplicate_with_equal_age_is_settled_by_uid() -> None:
    ledger = ledger_with()
    plan = plan_repair(ledger, [agent(9, "10.0.0.5"), agent(4, "10.0.0.5")])
    assert plan.duplicates[0].keeper.uid == "uid-4"


def test_status_disagreeing_with_ledger_owner_wins() -> None:
    ledger = ledger_with(1, 2)
    plan = plan_repair(ledger, [agent(1, "10.0.0.2", "fd00::1"), agent(2)])
    assert Claim(ip_address("10.0.0.2"), "uid-1", "node-1") in plan.recreate
    assert Claim(ip_address("10.0.0.1"), "uid-1", "node-1") in plan.surplus
    recreate_entries(ledger, plan, T0)
    assert [str(a) for a in ledger.addresses_of("uid-1")] == ["10.0.0.1", "10.0.0.2", "fd00::1"]
    # uid-2 is not adopted onto uid-1's address: allocating it gives it a fresh one.
    again = allocate(ledger, [AllocationRequest("uid-2", "node-2")], T0).results[0]
    assert "10.0.0.2" not in [str(a) for a in again.addresses]


def test_status_address_outside_the_pools_is_unverifiable() -> None:
    plan = plan_repair(ledger_with(), [agent(1, "192.168.0.1"), agent(2, "10.0.0.0")])
    assert {str(claim.address) for claim in plan.unverifiable} == {"192.168.0.1", "10.0.0.0"}
    assert plan.recreate == ()
