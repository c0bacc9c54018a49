"""The per-network batcher against a fake API server: failures, back-off, its guard."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reef.ipam import AllocationRequest, Ledger, Outcome, RepairPlan
from reef.operator import network_allocator
from reef.operator.network_allocator import MAX_ATTEMPTS, RELOAD_ATTEMPTS, RELOAD_BACKOFF_CAP
from tests.unit.operator_fakes import FakeKube, FakeSleep, agent, allocator

TIMEOUT = 5.0  # a deadline, not a wait: every fake answers at once


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))


async def _batch(kube: FakeKube, sleep: FakeSleep, *uids: str) -> list[Any]:
    """Start a batcher, send ``uids`` as one batch, return what each caller got."""
    batcher = allocator(kube, sleep)
    batcher.start()
    try:
        return await asyncio.gather(
            *(batcher.allocate(AllocationRequest(uid, f"n-{uid}", ())) for uid in uids),
            return_exceptions=True,
        )
    finally:
        await batcher.stop()


def test_a_5xx_mid_batch_is_retried_and_every_caller_gets_its_written_address() -> None:
    kube = FakeKube()
    run(_batch(kube, FakeSleep(), "seed"))  # the shard now exists: later writes replace it
    kube.failures["replace_config_map"] = [503]
    sleep = FakeSleep()
    results = run(_batch(kube, sleep, "u1", "u2", "u3"))
    assert [r.outcome for r in results] == [Outcome.ALLOCATED] * 3
    stored = kube.ledger()
    for uid, result in zip(("u1", "u2", "u3"), results, strict=True):
        assert stored.addresses_of(uid) == result.addresses
    assert len({r.addresses for r in results} | {stored.addresses_of("seed")}) == 4
    assert sleep.delays == [0.2]  # one back-off after the 5xx


def test_exhausted_attempts_fail_every_caller_and_write_nothing() -> None:
    kube = FakeKube()
    run(_batch(kube, FakeSleep(), "seed"))
    before = {name: dict(cm["data"]) for name, cm in kube.config_maps.items()}
    kube.failures["replace_config_map"] = [500] * MAX_ATTEMPTS
    sleep = FakeSleep()
    results = run(_batch(kube, sleep, "u1", "u2"))
    assert all(isinstance(r, RuntimeError) for r in results), results
    assert {name: dict(cm["data"]) for name, cm in kube.config_maps.items()} == before
    assert len(sleep.delays) == MAX_ATTEMPTS
    assert max(sleep.delays) == network_allocator.BACKOFF_CAP


def test_a_vanished_shard_is_rebuilt_from_statuses_before_allocating() -> None:
    kube = FakeKube()
    seeded = run(_batch(kube, FakeSleep(), "seed"))[0]
    kube.agents = [agent("seed", "n-seed", *seeded.addresses)]

    def vanish() -> None:
        kube.config_maps.clear()  # deleted behind the operator's back
        kube.before_replace = None

    kube.before_replace = vanish
    batcher = allocator(kube, FakeSleep())

    async def scenario() -> Any:
        batcher.start()
        try:
            await batcher.exclusive(_noop)  # load the ledger while the shard still exists
            return await batcher.allocate(AllocationRequest("u1", "n-u1", ()))
        finally:
            await batcher.stop()

    result = run(scenario())
    assert result.outcome is Outcome.ALLOCATED
    assert result.addresses != seeded.addresses
    stored = kube.ledger()
    assert stored.addresses_of("seed") == seeded.addresses  # restored from the status
    assert stored.addresses_of("u1") == result.addresses


async def _noop(ledger: Ledger) -> None:
    return None


def test_the_batcher_survives_a_crash_and_fails_only_that_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube = FakeKube()
    batcher = allocator(kube, FakeSleep())
    real = batcher._process
    crashes = [RuntimeError("bug")]

    async def crash_once(*args: Any) -> None:
        if crashes:
            raise crashes.pop()
        await real(*args)

    monkeypatch.setattr(batcher, "_process", crash_once)

    async def scenario() -> tuple[Any, Any]:
        batcher.start()
        try:
            first = await asyncio.gather(
                batcher.allocate(AllocationRequest("u1", "n1", ())), return_exceptions=True
            )
            second = await batcher.allocate(AllocationRequest("u2", "n2", ()))
            return first[0], second
        finally:
            await batcher.stop()

    first, second = run(scenario())
    assert isinstance(first, RuntimeError)
    assert str(first) == "bug"
    assert second.outcome is Outcome.ALLOCATED
    assert kube.ledger().addresses_of("u2") == second.addresses


def test_a_caller_that_gave_up_does_not_break_the_batch() -> None:
    kube = FakeKube()
    batcher = allocator(kube, FakeSleep())

    async def scenario() -> Any:
        batcher.start()
        try:
            quitter = asyncio.ensure_future(batcher.allocate(AllocationRequest("u1", "n1", ())))
            stayer = asyncio.ensure_future(batcher.allocate(AllocationRequest("u2", "n2", ())))
            await asyncio.sleep(0)  # both queued; the batch is now in flight
            quitter.cancel()
            return await stayer
        finally:
            await batcher.stop()

    assert run(scenario()).outcome is Outcome.ALLOCATED


def _reread(kube: FakeKube, sleep: FakeSleep) -> Any:
    async def work(ledger: Ledger, plan: RepairPlan) -> RepairPlan:
        return plan

    return run(allocator(kube, sleep).reread(work))


@pytest.mark.parametrize("failures", [1, 3, RELOAD_ATTEMPTS - 1])
def test_reread_backs_off_on_api_errors_with_growing_capped_delays(failures: int) -> None:
    kube = FakeKube()
    kube.failures["list_config_maps"] = [500] * failures
    sleep = FakeSleep()
    assert isinstance(_reread(kube, sleep), RepairPlan)
    assert kube.calls["list_config_maps"] == failures + 1
    assert len(sleep.delays) == failures
    assert sleep.delays == sorted(sleep.delays)
    assert all(0 < delay <= RELOAD_BACKOFF_CAP for delay in sleep.delays)
    if failures >= 2:
        assert sleep.delays[1] > sleep.delays[0]
    if failures == RELOAD_ATTEMPTS - 1:
        assert sleep.delays[-1] == RELOAD_BACKOFF_CAP


def test_reread_gives_up_after_bounded_errors() -> None:
    kube = FakeKube()
    kube.failures["list_config_maps"] = [500] * RELOAD_ATTEMPTS
    sleep = FakeSleep()
    with pytest.raises(Exception, match="500"):
        _reread(kube, sleep)
    assert kube.calls["list_config_maps"] == RELOAD_ATTEMPTS
    assert len(sleep.delays) == RELOAD_ATTEMPTS - 1


def test_a_lost_race_is_reread_at_once_without_back_off() -> None:
    kube = FakeKube()
    seeded = run(_batch(kube, FakeSleep(), "seed"))[0]
    kube.config_maps.clear()  # the status is all that is left: the reload rebuilds
    kube.agents = [agent("seed", "n-seed", *seeded.addresses)]
    kube.failures["create_config_map"] = [409]
    sleep = FakeSleep()
    _reread(kube, sleep)
    assert sleep.delays == []
    assert kube.ledger().addresses_of("seed") == seeded.addresses


def test_requests_arriving_soon_after_a_batch_started_wait_and_share_the_next_write() -> None:
    kube = FakeKube()

    async def scenario() -> int:
        batcher = allocator(kube, FakeSleep())
        batcher.batch_interval = 1.0
        batcher.start()
        try:
            await batcher.allocate(AllocationRequest("a", "n-a", ()))  # creates the shard
            writes = kube.calls.get("replace_config_map", 0)
            first = asyncio.create_task(batcher.allocate(AllocationRequest("b", "n-b", ())))
            for _ in range(5):  # the batcher's turn: unpaced, it would take "b" alone now
                await asyncio.sleep(0)
            second = batcher.allocate(AllocationRequest("c", "n-c", ()))
            await asyncio.gather(first, second)
            return kube.calls.get("replace_config_map", 0) - writes
        finally:
            await batcher.stop()

    assert run(scenario()) == 1
