"""The peer diff writes exactly the difference between desired and live peers."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reef.dataplane import Endpoint, Key, PeerPlan, PeerSpec, PeerState, diff_peers
from reef.dataplane.diff import KnownPeers

keys = st.integers(0, 15).map(lambda n: Key(bytes([n]) * 32))
networks = st.integers(0, 7).map(lambda n: ipaddress.ip_network(f"100.64.0.{n}/32"))
endpoints = st.none() | st.integers(1, 3).map(
    lambda n: Endpoint(ipaddress.ip_address(f"198.18.0.{n}"), 51820)
)
peer_specs = st.builds(
    PeerSpec,
    public_key=keys,
    allowed_ips=st.lists(networks, max_size=3).map(tuple),
    endpoint=endpoints,
    persistent_keepalive=st.sampled_from([0, 25]),
)
live_peers = st.builds(
    PeerState,
    public_key=keys,
    allowed_ips=st.lists(networks, max_size=3).map(tuple),
    endpoint=endpoints,
    persistent_keepalive=st.sampled_from([0, 25]),
    rx_bytes=st.integers(0, 100),
)
desired_sets = st.lists(peer_specs, max_size=8, unique_by=lambda p: p.public_key)
live_sets = st.lists(live_peers, max_size=8, unique_by=lambda p: p.public_key).map(
    lambda peers: {p.public_key: p for p in peers}
)


def apply_plan(plan: PeerPlan, live: Mapping[Key, PeerState]) -> dict[Key, PeerState]:
    """What WireGuard's peer set becomes after ``plan`` (the test's own model, not the
    product's): removed peers go, added ones come, updated ones keep their counters and,
    when the plan names none, their endpoint."""
    removed = set(plan.remove)
    result = {key: state for key, state in live.items() if key not in removed}
    for peer in plan.add:
        result[peer.public_key] = PeerState(
            peer.public_key, peer.allowed_ips, peer.endpoint, peer.persistent_keepalive
        )
    for change in plan.update:
        old = result[change.peer.public_key]
        peer = change.peer
        result[peer.public_key] = PeerState(
            peer.public_key,
            peer.allowed_ips,
            peer.endpoint if peer.endpoint is not None else old.endpoint,
            peer.persistent_keepalive,
            old.last_handshake,
            old.rx_bytes,
            old.tx_bytes,
        )
    return result


@given(desired_sets, live_sets)
def test_applying_the_plan_yields_the_desired_peers(
    desired: list[PeerSpec], live: dict[Key, PeerState]
) -> None:
    result = apply_plan(diff_peers(desired, live), live)
    assert set(result) == {p.public_key for p in desired}
    for peer in desired:
        got = result[peer.public_key]
        assert got.allowed_ips == peer.allowed_ips
        assert got.persistent_keepalive == peer.persistent_keepalive
        if peer.endpoint is not None:
            assert got.endpoint == peer.endpoint


@given(desired_sets, live_sets)
def test_a_second_diff_after_applying_is_empty(
    desired: list[PeerSpec], live: dict[Key, PeerState]
) -> None:
    after = apply_plan(diff_peers(desired, live), live)
    assert diff_peers(desired, after).empty


@given(desired_sets, live_sets)
def test_unchanged_peers_are_never_touched(
    desired: list[PeerSpec], live: dict[Key, PeerState]
) -> None:
    plan = diff_peers(desired, live)
    touched = {p.public_key for p in plan.add} | {u.peer.public_key for u in plan.update}
    touched |= set(plan.remove)
    for peer in desired:
        current = live.get(peer.public_key)
        if current is None:
            continue
        if (
            current.allowed_ips == peer.allowed_ips
            and current.persistent_keepalive == peer.persistent_keepalive
            and peer.endpoint in (None, current.endpoint)
        ):
            assert peer.public_key not in touched


@given(desired_sets, live_sets)
def test_allowed_ips_are_replaced_only_when_they_changed(
    desired: list[PeerSpec], live: dict[Key, PeerState]
) -> None:
    for change in diff_peers(desired, live).update:
        live_ips = live[change.peer.public_key].allowed_ips
        assert change.allowed_ips_changed == (live_ips != change.peer.allowed_ips)


def test_live_endpoint_is_kept_when_none_is_desired() -> None:
    key = Key(bytes(32))
    roamed = PeerState(key, endpoint=Endpoint.parse("198.18.0.9:4000"))
    assert diff_peers([PeerSpec(key)], {key: roamed}).empty


def test_duplicate_public_keys_in_desired_peers_are_refused() -> None:
    key = Key(bytes(32))
    with pytest.raises(ValueError, match="twice"):
        diff_peers([PeerSpec(key), PeerSpec(key)], {})


def test_allowed_ips_are_normalised_so_order_does_not_count_as_a_change() -> None:
    key = Key(bytes(32))
    a, b = ipaddress.ip_network("100.64.0.1/32"), ipaddress.ip_network("10.0.0.0/8")
    live = {key: PeerState(key, allowed_ips=(a, b))}
    assert diff_peers([PeerSpec(key, allowed_ips=(b, a, b))], live).empty


@given(live_sets, st.lists(desired_sets, min_size=1, max_size=6))
def test_diffing_against_the_known_peers_plans_what_diffing_against_the_device_would(
    device: dict[Key, PeerState], desired_over_time: list[list[PeerSpec]]
) -> None:
    """A backend reads its device once and then keeps what it wrote (KnownPeers): after
    any sequence of desired peer sets, its plans are the ones a fresh read would give."""
    known = KnownPeers()
    reads = 0

    def read() -> dict[Key, PeerState]:
        nonlocal reads
        reads += 1
        return dict(device)

    for desired in desired_over_time:
        plan = diff_peers(desired, known.get(read))
        assert plan == diff_peers(desired, device)
        device = apply_plan(plan, device)
        known.applied(plan)
    assert reads == 1


def test_known_peers_are_read_again_once_forgotten() -> None:
    key = Key(bytes([1]) * 32)
    device = {key: PeerState(key, (ipaddress.ip_network("100.64.0.1/32"),))}
    known = KnownPeers()
    assert known.get(lambda: device) == device
    known.forget()
    device = {}
    assert known.get(lambda: device) == {}
