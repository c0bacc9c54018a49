"""Retries after cool-downs coalesce; orphans are released only after the grace period."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from types import SimpleNamespace
from typing import Any

from reef.ipam import Claim
from reef.operator.cooldown_retry import COALESCE_SECONDS, CooldownRetries
from reef.operator.reconcile_agent import schedule_retry_after_cooldown
from reef.operator.repair import GraceBook, _confirmed_orphans
from tests.unit.operator_fakes import SPEC, FakeKube


class FakeTimers:
    """A fake clock and call_at: nothing fires until the test advances time."""

    def __init__(self) -> None:
        self.now = 1000.25  # mid-slot, so a short burst stays inside one slot
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        self.timers.append((when, callback))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted((t for t in self.timers if t[0] <= self.now), key=lambda t: t[0])
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, callback in due:
            callback()


def test_a_burst_of_deletions_costs_one_list_per_cooldown_slot() -> None:
    kube = FakeKube()
    timers = FakeTimers()
    retries = CooldownRetries(clock=lambda: timers.now, call_at=timers.call_at)
    pending: list[asyncio.Future[None]] = []

    def spawn(coroutine: Any, name: str) -> None:
        pending.append(asyncio.ensure_future(coroutine))

    ctx: Any = SimpleNamespace(kube=kube, reconciling=set(), spawn=spawn)
    handle: Any = SimpleNamespace(
        network=SimpleNamespace(spec=SPEC.model_copy(update={"reuse_cooldown": "5m"})),
        allocator=SimpleNamespace(name="default"),
        retries=retries,
    )

    async def scenario() -> None:
        def retry() -> None:
            schedule_retry_after_cooldown(ctx, handle)

        cooldown = 300.0
        for _ in range(100):  # a burst within one slot
            last_deadline = timers.now + cooldown
            retry()  # one deletion
            timers.now += COALESCE_SECONDS / 1000
        # Not even a moment before the last release's cool-down ends.
        timers.advance(last_deadline - timers.now - 0.001)
        assert kube.calls.get("list_agents", 0) == 0  # not before the cool-down
        assert not pending
        timers.advance(2)
        await asyncio.gather(*pending)
        assert kube.calls["list_agents"] == 1
        # A later release is not swallowed by the one that already fired.
        retry()
        timers.advance(cooldown + COALESCE_SECONDS)
        await asyncio.gather(*pending)
        assert kube.calls["list_agents"] == 2
        assert retries.pending == 0

    asyncio.run(asyncio.wait_for(scenario(), 5.0))


def test_deletions_spread_over_slots_get_one_retry_each() -> None:
    timers = FakeTimers()
    retries = CooldownRetries(clock=lambda: timers.now, call_at=timers.call_at)
    fired: list[float] = []
    for _ in range(3):
        retries.schedule(10.0, lambda: fired.append(timers.now))
        timers.now += 2 * COALESCE_SECONDS
    timers.advance(20)
    assert len(fired) == 3


def test_an_orphan_is_released_only_after_the_grace_and_only_once() -> None:
    kube = FakeKube()  # no agents: the owner is gone when re-checked
    ctx: Any = SimpleNamespace(kube=kube)
    book = GraceBook()
    grace = timedelta(seconds=60)
    orphan = (Claim(ip_address("10.77.0.9"), "gone-uid", "gone"),)
    start = datetime(2026, 12, 1, tzinfo=UTC)

    def confirmed(at: timedelta) -> list[str]:
        return asyncio.run(_confirmed_orphans(ctx, orphan, book, start + at, grace))

    assert confirmed(timedelta(0)) == []
    assert confirmed(grace - timedelta(seconds=1)) == []
    assert kube.calls.get("read_agent", 0) == 0  # no re-check before the grace
    assert confirmed(grace) == ["gone-uid"]
    # Released: the next pass (still listing it until the write shows) starts over.
    assert confirmed(grace + timedelta(seconds=1)) == []
    assert kube.calls["read_agent"] == 1
