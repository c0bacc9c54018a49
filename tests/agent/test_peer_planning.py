"""Peer planning is a pure function: its invariants, property-tested without I/O."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reef.agent.peers import plan_peers, tunnel_keepalive
from reef.api.kinds import Role, Topology
from reef.api.records import MeshAgent, MeshNetworkSpec, read_mesh_agent
from reef.dataplane import Key

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def member(
    name: str,
    key: Key,
    *,
    address: str | None,
    role: str = "Agent",
    extras: tuple[str, ...] = (),
    endpoint: str = "",
    age: int = 0,
    deleting: bool = False,
    keepalive: int | None = None,
) -> MeshAgent:
    metadata: dict[str, Any] = {
        "name": name,
        "creationTimestamp": (EPOCH + timedelta(seconds=age)).isoformat(),
    }
    if deleting:
        metadata["deletionTimestamp"] = EPOCH.isoformat()
    spec: dict[str, Any] = {
        "publicKey": key.public_key().base64(),
        "role": role,
        "endpoint": endpoint,
        "extraAllowedIPs": list(extras),
    }
    if keepalive is not None:
        spec["persistentKeepalive"] = keepalive
    return read_mesh_agent(
        {
            "metadata": metadata,
            "spec": spec,
            "status": {"addresses": [address] if address else []},
        }
    )


@st.composite
def meshes(draw: st.DrawFn) -> tuple[list[tuple[MeshAgent, Key]], MeshNetworkSpec]:
    count = draw(st.integers(2, 8))
    hosts = draw(st.lists(st.integers(1, 254), min_size=count, max_size=count, unique=True))
    topology = draw(st.sampled_from([Topology.FULL_MESH, Topology.HUB]))
    members = []
    for index, host in enumerate(hosts):
        key = Key(bytes([index + 1]) * 32)
        extras = draw(
            st.lists(
                st.sampled_from(
                    [
                        "10.0.0.0/24",
                        "10.0.0.128/25",
                        "10.1.0.0/16",
                        f"100.64.0.{hosts[0]}/32",
                        "192.168.0.0/16",
                        "100.64.0.0/24",
                    ]
                ),
                max_size=2,
            )
        )
        members.append(
            (
                member(
                    f"n{index}",
                    key,
                    address=None if draw(st.integers(0, 9)) == 0 else f"100.64.0.{host}",
                    role=draw(st.sampled_from(["Agent", "Hub"])),
                    extras=tuple(extras),
                    endpoint=draw(
                        st.sampled_from(["", f"198.18.0.{host}:51820", "nope.invalid:1"])
                    ),
                    age=draw(st.integers(0, 3)),
                    deleting=draw(st.integers(0, 9)) == 0,
                ),
                key,
            )
        )
    allowlist = draw(st.sampled_from([(), ("10.0.0.0/8",), ("10.0.0.0/8", "192.168.0.0/16")]))
    return members, MeshNetworkSpec(
        cidrs=("100.64.0.0/24",), topology=topology, routable_prefixes=allowlist
    )


CLUSTER_PREFIXES = (ipaddress.ip_network("10.1.0.0/16"),)
"""The cluster's own range (service or pods) in the drawn meshes: never routed."""


def plans(members: list[tuple[MeshAgent, Key]], network: MeshNetworkSpec) -> dict[str, Any]:
    agents = [m for m, _ in members]
    return {
        me.name: plan_peers(
            me, key.public_key(), agents, network, cluster_prefixes=CLUSTER_PREFIXES
        )
        for me, key in members
        if me.metadata.deletion_timestamp is None and me.status.addresses
    }


@settings(max_examples=300, deadline=None)
@given(meshes())
def test_plans_never_contain_this_node_route_to_a_member_without_address_or_overlap(
    case: tuple[list[tuple[MeshAgent, Key]], MeshNetworkSpec],
) -> None:
    members, network = case
    by_key = {key.public_key(): agent for agent, key in members}
    for plan in plans(members, network).values():
        for peer in plan.peers:
            agent = by_key[peer.public_key]
            assert agent.metadata.deletion_timestamp is None
            if not agent.status.addresses:
                # an early peer (joining): its key only, no traffic, not in peer health
                assert peer.allowed_ips == ()
                assert peer.public_key not in plan.names
        routed = [p for p in plan.peers if by_key[p.public_key].status.addresses]
        for left, right in itertools.combinations(
            [(n, p.public_key) for p in plan.peers for n in p.allowed_ips], 2
        ):
            if left[1] != right[1] and left[0].version == right[0].version:
                assert not left[0].overlaps(right[0]), (left, right)
        for peer in routed:  # each routed peer carries at least its own addresses
            own = {ipaddress.ip_network(a) for a in by_key[peer.public_key].status.addresses}
            assert own <= set(peer.allowed_ips), (own, peer.allowed_ips)
        skipped = {s.name for s in plan.skipped}
        assert "nope.invalid:1" not in {by_key[p.public_key].spec.endpoint for p in plan.peers}
        assert skipped.isdisjoint(plan.names.values())


@settings(max_examples=100, deadline=None)
@given(meshes())
def test_a_node_never_peers_with_its_own_meshagent_even_one_showing_an_old_key(
    case: tuple[list[tuple[MeshAgent, Key]], MeshNetworkSpec],
) -> None:
    # The node has just made a new key; its MeshAgent still shows the old one. Were the
    # node not excluded by name, the duplicate-key check could not catch it.
    members, network = case
    agents = [m for m, _ in members]
    new_key = Key(bytes([255]) * 32).public_key()
    for me, old_key in members:
        plan = plan_peers(me, new_key, agents, network, cluster_prefixes=CLUSTER_PREFIXES)
        assert old_key.public_key() not in {peer.public_key for peer in plan.peers}


@settings(max_examples=300, deadline=None)
@given(meshes())
def test_full_mesh_is_symmetric_and_every_node_agrees_on_who_is_skipped(
    case: tuple[list[tuple[MeshAgent, Key]], MeshNetworkSpec],
) -> None:
    members, network = case
    network = dataclasses.replace(network, topology=Topology.FULL_MESH)
    all_plans = plans(members, network)
    for (a, plan_a), (b, plan_b) in itertools.permutations(all_plans.items(), 2):
        a_has_b = b in plan_a.names.values()
        b_has_a = a in plan_b.names.values()
        # an endpoint that does not resolve is one-sided by nature; the rest is symmetric
        by_name = {m.name: m for m, _ in members}
        if "invalid" not in by_name[a].spec.endpoint and "invalid" not in by_name[b].spec.endpoint:
            assert a_has_b == b_has_a, (a, b)


@settings(max_examples=200, deadline=None)
@given(meshes())
def test_in_hub_topology_spokes_peer_only_with_hubs(
    case: tuple[list[tuple[MeshAgent, Key]], MeshNetworkSpec],
) -> None:
    members, network = case
    network = dataclasses.replace(network, topology=Topology.HUB)
    by_name = {m.name: m for m, _ in members}
    for name, plan in plans(members, network).items():
        if by_name[name].spec.role is Role.HUB:
            assert plan.forwarding == (plan.self_problem is None)
        else:
            assert not plan.forwarding
            assert all(by_name[peer].spec.role is Role.HUB for peer in plan.names.values())


@settings(max_examples=300, deadline=None)
@given(meshes())
def test_only_addresses_and_allowlisted_prefixes_outside_the_cluster_ranges_are_routed(
    case: tuple[list[tuple[MeshAgent, Key]], MeshNetworkSpec],
) -> None:
    members, network = case
    host_routes = {ipaddress.ip_network(f"{a}/32") for m, _ in members for a in m.status.addresses}
    reserved = [*network.networks, *CLUSTER_PREFIXES]
    for plan in plans(members, network).values():
        for net in (n for p in plan.peers for n in p.allowed_ips):
            if net in host_routes:
                continue
            assert any(net.subnet_of(a) for a in network.routable_networks), net
            assert not any(net.overlaps(r) for r in reserved), net


def test_a_prefix_outside_the_allowlist_is_dropped_alone_and_its_member_is_told_why() -> None:
    keys = [Key(bytes([i]) * 32) for i in range(1, 4)]
    me = member("me", keys[0], address="100.64.0.1")
    site = member(
        "site",
        keys[1],
        address="100.64.0.2",
        extras=("10.9.0.0/24", "172.16.0.0/24", "10.96.0.0/24", "100.64.0.128/25"),
    )
    network = MeshNetworkSpec(cidrs=("100.64.0.0/24",), routable_prefixes=("10.0.0.0/8",))
    cluster = (ipaddress.ip_network("10.96.0.0/12"),)

    seen_by_me = plan_peers(me, keys[0].public_key(), [me, site], network, cluster_prefixes=cluster)
    own = plan_peers(site, keys[1].public_key(), [me, site], network, cluster_prefixes=cluster)

    (peer,) = seen_by_me.peers
    assert [str(n) for n in peer.allowed_ips] == ["10.9.0.0/24", "100.64.0.2/32"]
    assert seen_by_me.skipped == ()
    assert own.refused_routes == (
        "172.16.0.0/24 is outside the MeshNetwork's routablePrefixes [10.0.0.0/8]",
        "10.96.0.0/24 overlaps the cluster's own range 10.96.0.0/12",
        "100.64.0.128/25 overlaps the pool 100.64.0.0/24",
    )
    assert seen_by_me.refused_routes == ()


def test_with_no_allowlist_a_member_routes_only_its_own_addresses() -> None:
    keys = [Key(bytes([i]) * 32) for i in range(1, 3)]
    me = member("me", keys[0], address="100.64.0.1")
    greedy = member("greedy", keys[1], address="100.64.0.2", extras=("0.0.0.0/0",))

    plan = plan_peers(
        me, keys[0].public_key(), [me, greedy], MeshNetworkSpec(cidrs=("100.64.0.0/24",))
    )

    assert [str(n) for n in plan.peers[0].allowed_ips] == ["100.64.0.2/32"]


def test_keepalive_overrides_are_agreed_by_both_ends_of_a_tunnel() -> None:
    assert tunnel_keepalive(None, None, 25) == 25
    assert tunnel_keepalive(10, None, 25) == 10
    assert tunnel_keepalive(None, 0, 25) == 0
    assert tunnel_keepalive(0, 15, 25) == 15
    assert tunnel_keepalive(40, 15, 25) == 15
    assert tunnel_keepalive(0, 0, 25) == 0
    keys = [Key(bytes([i]) * 32) for i in range(1, 4)]
    natted = member("natted", keys[0], address="100.64.0.1", keepalive=5)
    b = member("b", keys[1], address="100.64.0.2")
    c = member("c", keys[2], address="100.64.0.3")
    agents = [natted, b, c]
    network = MeshNetworkSpec(cidrs=("100.64.0.0/24",), persistent_keepalive=25)

    def keepalives(me: MeshAgent, key: Key) -> dict[str, int]:
        plan = plan_peers(me, key.public_key(), agents, network)
        return {plan.names[p.public_key]: p.persistent_keepalive for p in plan.peers}

    assert keepalives(natted, keys[0]) == {"b": 5, "c": 5}
    assert keepalives(b, keys[1]) == {"natted": 5, "c": 25}


def test_a_spokes_first_hub_carries_the_other_spokes_addresses() -> None:
    keys = [Key(bytes([i]) * 32) for i in range(1, 5)]
    hub = member("hub", keys[0], address="100.64.0.1", role="Hub", endpoint="198.18.0.1:51820")
    s1 = member("s1", keys[1], address="100.64.0.2", age=1)
    s2 = member("s2", keys[2], address="100.64.0.3", age=2, extras=("10.9.0.0/24",))
    network = MeshNetworkSpec(
        cidrs=("100.64.0.0/24",), topology=Topology.HUB, routable_prefixes=("10.9.0.0/16",)
    )

    plan = plan_peers(s1, keys[1].public_key(), [hub, s1, s2], network)

    (peer,) = plan.peers
    assert peer.public_key == keys[0].public_key()
    assert [str(n) for n in peer.allowed_ips] == [
        "10.9.0.0/24",
        "100.64.0.1/32",
        "100.64.0.3/32",
    ]
    assert str(peer.endpoint) == "198.18.0.1:51820"
    assert peer.persistent_keepalive == 25


def test_a_resolved_endpoint_name_is_used_and_an_unresolved_one_skips_the_peer() -> None:
    keys = [Key(bytes([i]) * 32) for i in range(1, 4)]
    me = member("me", keys[0], address="100.64.0.1")
    named = member("named", keys[1], address="100.64.0.2", endpoint="node-2.example:51820")
    ghost = member("ghost", keys[2], address="100.64.0.3", endpoint="ghost.invalid:51820")
    network = MeshNetworkSpec(cidrs=("100.64.0.0/24",))

    plan = plan_peers(
        me,
        keys[0].public_key(),
        [me, named, ghost],
        network,
        {"node-2.example": ipaddress.ip_address("198.18.0.2"), "ghost.invalid": None},
    )

    assert [str(p.endpoint) for p in plan.peers] == ["198.18.0.2:51820"]
    assert [(s.name, "does not resolve" in s.reason) for s in plan.skipped] == [("ghost", True)]


def test_a_member_reusing_a_public_key_is_skipped() -> None:
    key = Key(bytes([1]) * 32)
    me = member("me", key, address="100.64.0.1")
    twin = member("twin", key, address="100.64.0.2")

    plan = plan_peers(me, key.public_key(), [me, twin], MeshNetworkSpec(cidrs=("100.64.0.0/24",)))

    assert plan.peers == ()
    assert plan.skipped[0].name == "twin"
    assert "also used by me" in plan.skipped[0].reason


def test_an_extra_covering_another_members_address_skips_the_younger_member() -> None:
    keys = [Key(bytes([i]) * 32) for i in range(1, 4)]
    me = member("me", keys[0], address="100.64.0.1")
    # An address outside the pool (a hand-edited status) inside an allowed prefix.
    odd = member("odd", keys[1], address="10.9.0.5", age=1)
    site = member("site", keys[2], address="100.64.0.3", age=2, extras=("10.9.0.0/24",))
    network = MeshNetworkSpec(cidrs=("100.64.0.0/24",), routable_prefixes=("10.9.0.0/16",))

    plan = plan_peers(me, keys[0].public_key(), [me, odd, site], network)

    assert sorted(plan.names.values()) == ["odd"]
    assert [(s.name, s.reason) for s in plan.skipped] == [
        ("site", "extraAllowedIPs 10.9.0.0/24 overlaps 10.9.0.5/32 of odd")
    ]
