"""The agent's status writes: coalesced to at most one per interval, urgent ones at once,
and the last state always written (nothing lost). Fake API, fake monotonic clock."""

from __future__ import annotations

import asyncio
import collections
import itertools
from typing import Any

import pytest

from reef.agent import status as status_module
from reef.agent.health import Observation
from reef.agent.status import (
    MAX_COALESCED_SECONDS,
    SMALL_MESH,
    StatusReporter,
    coalescing_interval,
    phase_of,
)
from tests.support.observations import configured_member

INTERVAL = 30.0


class FakeKube:
    """Records each status write and keeps the object's status as the API server would."""

    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []
        self.body: dict[str, Any] = {"metadata": {"name": "n1", "generation": 1}}

    async def apply_status(
        self, plural: str, name: str, status: dict[str, Any], *, manager: str
    ) -> dict[str, Any]:
        self.writes.append(status)
        self.body = {**self.body, "status": status}
        return self.body


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTime:
    def __init__(self, clock: Clock) -> None:
        self.monotonic = clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    # The reporter reads time.monotonic() of its own module; only that one is faked.
    monkeypatch.setattr(status_module, "time", FakeTime(fake))
    return fake


def healthy(count: int, total: int = 5) -> Observation:
    """`count` of `total` peers alive. Between 1 and total-1 the conditions keep their
    status and only counts and messages change: what the rate limit coalesces."""
    return configured_member(count, total, tuple(f"p{i}" for i in range(total - count)))


def report(reporter: StatusReporter, kube: FakeKube, o: Observation, **kw: bool) -> None:
    asyncio.run(reporter.report(kube.body, o, **kw))


def reporter() -> tuple[FakeKube, StatusReporter]:
    kube = FakeKube()
    return kube, StatusReporter(kube, "n1", INTERVAL)  # type: ignore[arg-type]


def peers_in(write: dict[str, Any]) -> str:
    summary: str = write["dataplane"]["peers"]["summary"]
    return summary


def test_changes_within_the_interval_are_coalesced_and_the_last_one_goes_out_when_due(
    clock: Clock,
) -> None:
    kube, status = reporter()
    report(status, kube, healthy(4))  # the first report is urgent: written at once
    assert [peers_in(w) for w in kube.writes] == ["4/5"]

    for seconds, count in ((1, 3), (10, 1), (29, 2)):
        clock.now = 1000.0 + seconds
        report(status, kube, healthy(count))
    assert len(kube.writes) == 1, "a count change inside the interval must wait"
    assert status.due_at == 1000.0 + INTERVAL

    clock.now = status.due_at  # the agent loop wakes at due_at and reports again
    report(status, kube, healthy(2))
    assert [peers_in(w) for w in kube.writes] == ["4/5", "2/5"]  # the latest state, once
    assert status.due_at is None


def test_at_most_one_write_per_interval_however_often_it_changes(clock: Clock) -> None:
    kube, status = reporter()
    times = []
    for step in range(200):  # a change every second for 200 s
        clock.now = 1000.0 + step
        before = len(kube.writes)
        report(status, kube, healthy(1 + step % 4))
        if len(kube.writes) > before:
            times.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps
    assert min(gaps) >= INTERVAL
    assert len(times) <= 1 + 200 // INTERVAL


def test_a_condition_flip_is_written_at_once_despite_the_rate_limit(clock: Clock) -> None:
    kube, status = reporter()
    report(status, kube, healthy(4))
    clock.now += 1
    report(status, kube, healthy(0))  # isolated: Ready flips to False
    assert len(kube.writes) == 2
    ready = {c["type"]: c for c in kube.writes[-1]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "Isolated")


def test_now_flushes_a_pending_change_inside_the_interval(clock: Clock) -> None:
    kube, status = reporter()
    report(status, kube, healthy(4))
    clock.now += 1
    report(status, kube, healthy(2))
    assert len(kube.writes) == 1
    assert status.due_at is not None
    clock.now += 1
    report(status, kube, healthy(3), now=True)  # e.g. the last words before exiting
    assert [peers_in(w) for w in kube.writes] == ["4/5", "3/5"]
    assert status.due_at is None


def test_a_status_equal_to_the_objects_is_never_written_and_cancels_a_pending_one(
    clock: Clock,
) -> None:
    kube, status = reporter()
    report(status, kube, healthy(4))
    clock.now += 1
    report(status, kube, healthy(3))  # pending...
    report(status, kube, healthy(4))  # ...then back to what the object already says
    assert status.due_at is None
    clock.now += 2 * INTERVAL
    report(status, kube, healthy(4))
    assert len(kube.writes) == 1


def test_the_coalescing_interval_grows_with_the_mesh_beyond_a_small_one() -> None:
    assert coalescing_interval(10.0, 0) == coalescing_interval(10.0, SMALL_MESH) == 10.0
    assert coalescing_interval(10.0, 4 * SMALL_MESH) == 40.0
    assert coalescing_interval(10.0, 5000) == MAX_COALESCED_SECONDS
    assert coalescing_interval(600.0, 5000) == 600.0  # never below the configured interval


def test_in_a_large_mesh_count_changes_wait_longer_and_a_flip_still_goes_at_once(
    clock: Clock,
) -> None:
    kube, status = reporter()
    peers = 10 * SMALL_MESH
    report(status, kube, healthy(peers - 1, peers))
    clock.now += INTERVAL  # the small-mesh interval has passed: not enough at this size
    report(status, kube, healthy(peers - 2, peers))
    assert len(kube.writes) == 1
    interval = coalescing_interval(INTERVAL, peers)
    assert status.due_at == max(1000.0 + interval, clock.now + phase_of("n1") * interval)
    report(status, kube, healthy(0, peers))  # isolated: Ready flips, written at once
    assert len(kube.writes) == 2


def test_after_a_quiet_spell_large_mesh_nodes_spread_their_first_change_over_the_interval(
    clock: Clock,
) -> None:
    peers = 10 * SMALL_MESH
    interval = coalescing_interval(INTERVAL, peers)
    dues = []
    for index in range(500):
        kube = FakeKube()
        status = StatusReporter(kube, f"node-{index}", INTERVAL)  # type: ignore[arg-type]
        clock.now = 1000.0
        report(status, kube, healthy(peers - 1, peers))  # the first report: at once
        clock.now = 10_000.0  # long quiet; then a member joins everywhere at once
        report(status, kube, healthy(peers - 1, peers + 1))
        assert len(kube.writes) == 1
        assert status.due_at is not None
        dues.append(status.due_at - clock.now)
        clock.now = status.due_at
        report(status, kube, healthy(peers, peers + 1))  # its phase came: the latest goes
        assert [peers_in(w) for w in kube.writes][-1] == f"{peers}/{peers + 1}"
    # evenly spread: every tenth of the interval has its share (50 expected in each)
    tenths = collections.Counter(int(10 * due / interval) for due in dues)
    assert sorted(tenths) == list(range(10))
    assert min(tenths.values()) >= 25


def test_a_small_mesh_writes_its_first_change_after_a_quiet_spell_at_once(clock: Clock) -> None:
    kube, status = reporter()
    report(status, kube, healthy(4))
    clock.now += 10 * INTERVAL
    report(status, kube, healthy(3))
    assert [peers_in(w) for w in kube.writes] == ["4/5", "3/5"]
