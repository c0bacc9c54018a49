"""The cheap health check (LivenessTracker on PeerLiveness) says what the straightforward
one (peer_health over RxTracker's silences on a whole DeviceState) says, tick after tick;
and a tick with nothing changed writes no status."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reef.agent import status as status_module
from reef.agent.health import JOINING_GRACE_SECONDS, LivenessTracker, RxTracker, peer_health
from reef.agent.peers import PeerSetPlan
from reef.agent.reporting import Reporter
from reef.agent.status import StatusReporter
from reef.api.models import parse_mesh_agent
from reef.dataplane import DeviceState, Key
from reef.dataplane.select import BackendChoice
from reef.dataplane.spec import PeerLiveness, PeerState, liveness_of
from reef.settings import AgentSettings

KEYS = [Key(bytes([i + 1]) * 32) for i in range(8)]
EPOCH = 1_800_000_000  # whole seconds: datetimes and floats agree exactly at each limit

# One tick: for each of the 8 keys, None (not on the device) or (handshake age in s or
# None for never, whether rx moved); then how far both clocks advanced.
# Ages and steps at and around each limit (180 s; silence 3·K + 5 s for K in 1, 10, 25).
ages = st.one_of(st.sampled_from([179, 180, 181]), st.integers(-5, 400))
steps = st.one_of(st.sampled_from([0, 7, 8, 9, 34, 35, 36, 79, 80, 81]), st.integers(0, 120))
peer_ticks = st.lists(
    st.one_of(st.none(), st.tuples(st.one_of(st.none(), ages), st.booleans())),
    min_size=len(KEYS),
    max_size=len(KEYS),
)
ticks = st.lists(st.tuples(peer_ticks, steps), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    ticks,
    st.lists(st.booleans(), min_size=len(KEYS), max_size=len(KEYS)),
    st.sampled_from([0, 1, 10, 25]),
    st.integers(1, 4),
)
def test_the_tracker_agrees_with_peer_health_over_any_sequence_of_ticks(
    sequence: list[tuple[list[tuple[int | None, bool] | None], int]],
    named: list[bool],
    keepalive: int,
    oldest: int,
) -> None:
    names = {key: f"p{i}" for i, key in enumerate(KEYS) if named[i]}
    reference, tracker = RxTracker(), LivenessTracker(oldest)
    wall = monotonic = 0
    rx = dict.fromkeys(KEYS, 0)
    planned_at: float | None = None
    for peers, advance in sequence:
        wall, monotonic = wall + advance, monotonic + advance
        planned_at = monotonic if planned_at is None else planned_at
        now = EPOCH + wall
        state_peers = {}
        for key, peer in zip(KEYS, peers, strict=True):
            if peer is None:
                continue
            age, moved = peer
            rx[key] += moved
            handshake = None if age is None else datetime.fromtimestamp(now - age, tz=UTC)
            state_peers[key] = PeerState(key, last_handshake=handshake, rx_bytes=rx[key])
        state = DeviceState(peers=state_peers)
        silence = reference.silence(state, float(monotonic))
        expected = peer_health(
            state, names, datetime.fromtimestamp(now, tz=UTC), silence, keepalive
        )
        check = tracker.check(liveness_of(state), names, float(now), float(monotonic), keepalive)
        # The reference knows no grace: what it calls unhealthy, the tracker calls unhealthy
        # or, if planned less than the grace ago and without a handshake on the device,
        # joining.
        young = monotonic - planned_at < JOINING_GRACE_SECONDS
        joining = tuple(
            n for n in expected[1] if young and not _handshake(state, _key_of(names, n))
        )
        assert (check.healthy, check.joining) == (expected[0], joining)
        assert check.unhealthy == tuple(n for n in expected[1] if n not in joining)
        stamps = [state.peers[k].last_handshake for k in names if k in state.peers]
        ages = [now - stamp.timestamp() for stamp in stamps if stamp is not None]
        assert sorted(check.oldest.values()) == sorted(heapq.nlargest(oldest, ages))


def _handshake(state: DeviceState, key: Key) -> datetime | None:
    peer = state.peers.get(key)
    return peer.last_handshake if peer is not None else None


def _key_of(names: dict[Key, str], name: str) -> Key:
    (key,) = (k for k, n in names.items() if n == name)
    return key


def test_a_new_peer_without_a_handshake_is_joining_for_the_grace_then_unhealthy() -> None:
    tracker = LivenessTracker()
    a, b = KEYS[0].raw, KEYS[1].raw
    only_a = {KEYS[0]: "a"}
    both = {KEYS[0]: "a", KEYS[1]: "b"}
    assert tracker.check({a: (EPOCH, 1)}, only_a, EPOCH, 0.0).healthy == 1
    # b planned at t=100: not on the device yet, then there without a handshake
    check = tracker.check({a: (EPOCH, 1)}, both, EPOCH, 100.0)
    assert (check.healthy, check.unhealthy, check.joining) == (1, (), ("b",))
    check = tracker.check({a: (EPOCH, 1), b: (0.0, 0)}, both, EPOCH, 129.0)
    assert (check.healthy, check.unhealthy, check.joining) == (1, (), ("b",))
    # the grace is counted from when b was planned, not from a new mapping of the same peers
    check = tracker.check({a: (EPOCH, 1), b: (0.0, 0)}, dict(both), EPOCH, 130.0)
    assert (check.healthy, check.unhealthy, check.joining) == (1, ("b",), ())
    # a peer that once handshaked and went stale is unhealthy at once, never joining
    fresh = LivenessTracker()
    check = fresh.check({a: (EPOCH - 181, 1)}, only_a, EPOCH, 0.0)
    assert (check.unhealthy, check.joining) == (("a",), ())


def test_a_new_plan_of_peers_is_picked_up_and_a_peer_leaving_the_device_is_forgotten() -> None:
    tracker = LivenessTracker(joining_grace=0)  # the rx counters alone, no joining peers
    a, b = KEYS[0].raw, KEYS[1].raw
    live: PeerLiveness = {a: (EPOCH, 7), b: (EPOCH, 7)}
    assert tracker.check(live, {KEYS[0]: "a"}, EPOCH, 0.0, 1).healthy == 1
    both = {KEYS[0]: "a", KEYS[1]: "b"}
    assert tracker.check(live, both, EPOCH, 1.0, 1).healthy == 2
    # b leaves the device and comes back with the same counter: silent since it came back
    assert tracker.check({a: (EPOCH, 8)}, both, EPOCH, 2.0, 1).unhealthy == ("b",)
    check = tracker.check({a: (EPOCH, 9), b: (EPOCH, 7)}, both, EPOCH, 100.0, 1)
    assert (check.healthy, check.unhealthy) == (2, ())


# --- a tick with nothing changed writes nothing --------------------------------------


class _Kube:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.writes = 0

    async def apply_status(
        self, plural: str, name: str, status: dict[str, Any], *, manager: str
    ) -> dict[str, Any]:
        self.writes += 1
        self.body = {**self.body, "status": {**self.body["status"], **status}}
        return self.body


class _Device:
    """Every peer handshaking; each read, the handshakes are a little older and rx grew."""

    choice = BackendChoice("userspace", "test")

    def __init__(self) -> None:
        self.reads = 0
        self.stale: set[bytes] = set()  # peers whose last handshake is 1000 s old

    async def read_liveness(self) -> PeerLiveness:
        self.reads += 1
        now = datetime.now(UTC).timestamp()
        return {
            key.raw: (now - (1000 if key.raw in self.stale else self.reads), self.reads)
            for key in KEYS
        }


class _Config:
    configured = True
    listen_port = 51820
    error: str | None = None
    error_reason = "ConfigurationFailed"


class _Later(datetime):
    """The status module's clock: each report 5 s after the one before (lastSync moves)."""

    _ticks = itertools.count()

    @classmethod
    def now(cls, tz: Any = None) -> _Later:
        moment = datetime(2026, 12, 3, tzinfo=UTC) + timedelta(seconds=5 * next(cls._ticks))
        return cls.fromtimestamp(moment.timestamp(), tz)


def test_health_ticks_with_nothing_changed_write_no_status_and_a_dead_peer_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(status_module, "datetime", _Later)
    body = {
        "metadata": {"name": "n0", "uid": "u0", "generation": 1, "resourceVersion": "1"},
        "spec": {"network": "mesh", "publicKey": Key(bytes(32)).base64()},
        "status": {
            "addresses": ["100.64.0.1"],
            "conditions": [{"type": "Allocated", "status": "True", "reason": "Allocated"}],
        },
    }
    kube = _Kube(body)
    settings = AgentSettings.from_environment({}, node_name="n0", network="mesh")
    status = StatusReporter(kube, "n0", min_interval=3600)  # type: ignore[arg-type]
    device = _Device()
    reporter = Reporter(settings, None, status, device, lambda: None)  # type: ignore[arg-type]
    me = parse_mesh_agent(body)
    plan = PeerSetPlan(names={key: f"p{i}" for i, key in enumerate(KEYS)})

    async def tick() -> None:
        await reporter.status(kube.body, me, plan, _Config())  # type: ignore[arg-type]

    asyncio.run(tick())  # the first report
    assert kube.writes == 1
    for _ in range(5):
        asyncio.run(tick())
    assert (kube.writes, status.due_at, device.reads) == (1, None, 6)
    device.stale.add(KEYS[3].raw)  # PeersHealthy flips: urgent, written at once
    asyncio.run(tick())
    assert kube.writes == 2
    assert kube.body["status"]["dataplane"]["unreachable"] == ["p3"]
