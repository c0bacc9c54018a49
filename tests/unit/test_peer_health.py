"""Peer health from handshake ages and received bytes, at and around each threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reef.agent.health import (
    HANDSHAKE_HEALTHY,
    RxTracker,
    conditions,
    peer_health,
)
from reef.dataplane import DeviceState, Key
from reef.dataplane.spec import PeerState
from tests.support.observations import configured_member

NOW = datetime(2026, 12, 1, tzinfo=UTC)
A, B = Key(bytes([1]) * 32), Key(bytes([2]) * 32)
SECOND = timedelta(seconds=1)


def device(**handshakes: datetime | None) -> DeviceState:
    keys = {"a": A, "b": B}
    return DeviceState(
        peers={keys[n]: PeerState(keys[n], last_handshake=at) for n, at in handshakes.items()}
    )


@pytest.mark.parametrize(
    ("age", "healthy"),
    [
        (timedelta(0), True),
        (HANDSHAKE_HEALTHY, True),  # the limit itself still counts as recent
        (HANDSHAKE_HEALTHY + SECOND, False),
    ],
    ids=["just-now", "at-180s", "past-180s"],
)
def test_a_peer_is_healthy_while_its_last_handshake_is_at_most_180_s_old(
    age: timedelta, healthy: bool
) -> None:
    result = peer_health(device(a=NOW - age), {A: "a"}, NOW)
    assert result == ((1, ()) if healthy else (0, ("a",)))


def test_a_peer_never_handshaken_or_absent_from_the_device_is_unhealthy() -> None:
    # a: on the device, no handshake yet; b: planned but not on the device at all.
    assert peer_health(device(a=None), {A: "a", B: "b"}, NOW) == (0, ("a", "b"))


def test_only_the_planned_peers_are_counted() -> None:
    # b is on the device (say, being removed) but not in the plan: not counted either way.
    assert peer_health(device(a=NOW, b=None), {A: "a"}, NOW) == (1, ())


@pytest.mark.parametrize(
    ("quiet", "healthy"),
    [(3 * 10 + 5.0, True), (3 * 10 + 5.5, False)],
    ids=["at-3K+5", "past-3K+5"],
)
def test_with_keepalive_k_a_peer_silent_longer_than_3k_plus_5_s_is_unhealthy(
    quiet: float, healthy: bool
) -> None:
    result = peer_health(device(a=NOW), {A: "a"}, NOW, {A: quiet}, keepalive=10)
    assert result == ((1, ()) if healthy else (0, ("a",)))


def test_rx_silence_counts_from_the_last_time_the_counter_grew() -> None:
    tracker = RxTracker()

    def rx(count: int) -> DeviceState:
        return DeviceState(peers={A: PeerState(A, last_handshake=NOW, rx_bytes=count)})

    assert tracker.silence(rx(100), 1000.0) == {A: 0.0}
    assert tracker.silence(rx(100), 1020.0) == {A: 20.0}  # unchanged: silent since 1000
    assert tracker.silence(rx(100), 1040.0) == {A: 40.0}
    assert tracker.silence(rx(150), 1041.0) == {A: 0.0}  # grew: silence starts over
    assert tracker.silence(rx(150), 1050.0) == {A: 9.0}


def test_no_peers_is_healthy_with_reason_no_peers_and_a_lone_node_is_ready() -> None:
    _, peers, ready = conditions(configured_member(0, 0))
    assert (peers.status, peers.reason) == ("True", "NoPeers")
    assert (ready.status, ready.reason) == ("True", "Ready")


def test_peers_healthy_is_false_and_names_them_when_any_peer_is_not_alive() -> None:
    _, peers, ready = conditions(configured_member(2, 3, ("c",)))
    assert (peers.status, peers.reason) == ("False", "HandshakesMissing")
    assert peers.message.endswith(": c")
    assert (ready.status, ready.reason) == ("True", "SomePeersUnreachable")


def test_all_peers_alive_is_handshakes_recent() -> None:
    _, peers, _ = conditions(configured_member(2, 2))
    assert (peers.status, peers.reason) == ("True", "HandshakesRecent")


def test_peers_joining_keep_peers_healthy_true_and_a_new_node_is_not_isolated() -> None:
    # a node joined: the others have it planned, no handshake yet (within the grace)
    _, peers, ready = conditions(configured_member(2, 3, joining=("c",)))
    assert (peers.status, peers.reason) == ("True", "PeersJoining")
    assert peers.message.endswith(": c")
    assert (ready.status, ready.reason) == ("True", "Ready")
    # the new node itself: every peer joining is not "isolated" (yet)
    _, peers, ready = conditions(configured_member(0, 3, joining=("a", "b", "c")))
    assert (peers.status, ready.status) == ("True", "True")
    # joining beside a dead peer: the dead one decides
    _, peers, ready = conditions(configured_member(0, 3, ("a",), joining=("b", "c")))
    assert (peers.status, peers.reason) == ("False", "HandshakesMissing")
    assert peers.message.startswith("1 of 3 peer(s)")
    assert (ready.status, ready.reason) == ("False", "Isolated")
