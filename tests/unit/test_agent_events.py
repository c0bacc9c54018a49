"""The operator's MeshAgent events: one reconcile per object at a time, the newest
waiting event after it, settled members counted without a reconcile (the glue's logic;
tests/allocation/ runs it against a real API server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reef.operator import agent_watch
from reef.operator.agent_watch import AgentEvents, member_state, settled
from reef.operator.reachability import MemberReport


def _agent(uid: str, version: str, *, addresses: tuple[str, ...] = (), ready: bool = False) -> Any:
    status: dict[str, Any] = {}
    if addresses:
        status["addresses"] = list(addresses)
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    return {
        "metadata": {"name": f"n-{uid}", "uid": uid, "resourceVersion": version},
        "spec": {"network": "mesh", "publicKey": "k"},
        "status": status,
    }


class FakeContext:
    def __init__(self) -> None:
        self.members: dict[str, tuple[str, bool, MemberReport]] = {}
        self.forgotten: list[str] = []
        self.present: set[str] | None = None

    def note_member(self, network: str, uid: str, ready: bool, report: MemberReport) -> None:
        self.members[uid] = (network, ready, report)

    def forget_agent(self, body: Any) -> None:
        self.forgotten.append(body["metadata"]["uid"])

    def forget_absent(self, present: set[str]) -> None:
        self.present = present


class Reconciles:
    """reconcile_agent stood in: records each call and blocks until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.started = asyncio.Event()
        self.two_started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, context: Any, agent: Any, body: Any) -> None:
        self.calls.append((body["metadata"]["uid"], body["metadata"]["resourceVersion"]))
        self.started.set()
        if len(self.calls) >= 2:
            self.two_started.set()
        await self.release.wait()


@pytest.fixture
def reconciles(monkeypatch: pytest.MonkeyPatch) -> Reconciles:
    stand_in = Reconciles()
    monkeypatch.setattr(agent_watch, "reconcile_agent", stand_in)
    monkeypatch.setattr(agent_watch, "read_agent", lambda body: body)
    return stand_in


async def _one_running_one_waiting(events: AgentEvents, reconciles: Reconciles) -> None:
    """Object "a": the reconcile of its version 1 running, version 2 waiting behind it."""
    events.changed("ADDED", _agent("a", "1"))
    await reconciles.started.wait()
    events.changed("MODIFIED", _agent("a", "2"))


async def _settle(events: AgentEvents) -> None:
    """Let every reconcile the events started run to its end."""
    while events._tasks:
        await asyncio.gather(*events._tasks)


def test_an_event_during_a_reconcile_waits_and_only_the_newest_runs(
    reconciles: Reconciles,
) -> None:
    async def scenario() -> None:
        events = AgentEvents(FakeContext())  # type: ignore[arg-type]
        await _one_running_one_waiting(events, reconciles)
        events.changed("MODIFIED", _agent("a", "3"))
        assert reconciles.calls == [("a", "1")]  # one at a time per object
        reconciles.release.set()
        await _settle(events)
        assert reconciles.calls == [("a", "1"), ("a", "3")]

    asyncio.run(scenario())


def test_other_objects_are_reconciled_at_the_same_time(reconciles: Reconciles) -> None:
    async def scenario() -> None:
        events = AgentEvents(FakeContext())  # type: ignore[arg-type]
        events.changed("ADDED", _agent("a", "1"))
        events.changed("ADDED", _agent("b", "2"))
        await asyncio.wait_for(reconciles.two_started.wait(), 5)  # neither waits for the other
        assert sorted(reconciles.calls) == [("a", "1"), ("b", "2")]
        reconciles.release.set()
        await _settle(events)

    asyncio.run(scenario())


def test_a_settled_event_drops_the_waiting_one_and_is_only_counted(
    reconciles: Reconciles,
) -> None:
    async def scenario() -> None:
        context = FakeContext()
        events = AgentEvents(context)  # type: ignore[arg-type]
        await _one_running_one_waiting(events, reconciles)  # "2": before the address
        allocated = _agent("a", "3", addresses=("100.64.0.1",), ready=True)
        assert settled(allocated)
        events.settled(member_state(allocated))
        reconciles.release.set()
        await _settle(events)
        assert reconciles.calls == [("a", "1")]
        network, ready, report = context.members["a"]
        assert (network, ready, report.name) == ("mesh", True, "n-a")

    asyncio.run(scenario())


def test_a_deleted_object_is_forgotten_and_its_waiting_event_dropped(
    reconciles: Reconciles,
) -> None:
    async def scenario() -> None:
        context = FakeContext()
        events = AgentEvents(context)  # type: ignore[arg-type]
        await _one_running_one_waiting(events, reconciles)
        events.changed("DELETED", _agent("a", "3"))
        reconciles.release.set()
        await _settle(events)
        assert reconciles.calls == [("a", "1")]
        assert context.forgotten == ["a"]

    asyncio.run(scenario())


def test_a_member_being_deleted_is_not_settled() -> None:
    body = _agent("a", "1", addresses=("100.64.0.1",))
    assert settled(body)
    body["metadata"]["deletionTimestamp"] = "2026-12-08T00:00:00Z"
    assert not settled(body)
    assert not settled(_agent("b", "1"))


class _NoApi:
    """The watch's API client, never called here: the test feeds its thread side."""

    def list_raw(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no API call expected")


class _RecordingLoop:
    """Records what the watch's thread hands the loop."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        self.calls.append((callback, *args))


def test_what_one_read_of_the_watch_brought_reaches_the_loop_in_one_call_in_order() -> None:
    loop = _RecordingLoop()
    context = FakeContext()
    context.kube = _NoApi()  # type: ignore[attr-defined]
    watch = agent_watch.AgentWatch(context, loop)  # type: ignore[arg-type]
    watch._hand_over("ADDED", _agent("a", "1"))
    watch._hand_over("MODIFIED", _agent("a", "2", addresses=("100.64.0.1",)))
    watch._hand_over("DELETED", _agent("b", "3", addresses=("100.64.0.2",)))
    assert loop.calls == []  # nothing before the read is complete
    watch._handed_over()
    ((deliver, batch),) = loop.calls
    assert deliver == watch.events.deliver
    assert [type(item).__name__ for item in batch] == ["tuple", "MemberState", "tuple"]
    assert batch[0][0] == "ADDED"
    assert batch[2][0] == "DELETED"
    assert batch[1].uid == "a"
    watch._handed_over()
    assert len(loop.calls) == 1  # an empty read wakes no one
