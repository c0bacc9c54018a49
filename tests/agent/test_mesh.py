"""Agents in namespace nodes build the mesh, follow membership changes, survive restarts."""

from __future__ import annotations

import itertools
import re
import signal
from collections.abc import Callable

from tests.agent.bed import AgentBed, wait_for_link_gone
from tests.support.mesh import (
    MESH_AGENT_COLUMNS,
    Body,
    MeshApi,
    addresses,
    members_ready,
    wait_for_agents,
)
from tests.support.operator_process import OperatorProcess
from tests.support.ping import PingStream
from tests.testbed.clients import KubeCLI


def ready_with_peers(
    bed: AgentBed, names: list[str], peers: int, healthy: int | None = None
) -> Callable[[dict[str, Body]], bool]:
    """Every named agent reports Ready with ``peers`` peers, ``healthy`` (default: all) of
    them healthy."""
    members = [bed.node_name(n) for n in names]
    return members_ready(
        dict.fromkeys(members, peers), dict.fromkeys(members, peers if healthy is None else healthy)
    )


def mesh_address(body: Body) -> str:
    return addresses(body)[0]


def test_three_agents_form_a_mesh_in_which_every_pair_pings(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str, kubectl: KubeCLI
) -> None:
    nodes = ["a", "b", "c"]
    agents = bed(nodes)
    for name in nodes:
        agents.start(name)
    objects = wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 2), timeout=90)

    for src, dst in itertools.permutations(nodes, 2):
        agents.ping(src, mesh_address(objects[agents.node_name(dst)]))
    for name in nodes:
        body = objects[agents.node_name(name)]
        others = {agents.public_key(n) for n in nodes if n != name}
        assert agents.wg_peers(name) == others
        # only the public key reaches the API, and it is the device's own
        assert body["spec"]["publicKey"] == agents.public_key(name)
        assert "mesh.reef.dev/release-address" in body["metadata"]["finalizers"]
        assert body["spec"]["endpoint"] == f"{agents.node(name).underlay.ip}:51820"
        dataplane = body["status"]["dataplane"]
        assert dataplane["backend"] == "userspace"
        assert "wireguard" in dataplane["backendReason"]
        assert dataplane["configuredAddresses"] == [f"{mesh_address(body)}/32"]
        # underlay veth MTU 1500 minus WireGuard's 80
        link = agents.node(name).run("ip", "-o", "link", "show", agents.node(name).wg_ifname)
        assert " mtu 1420 " in link.stdout

    table = kubectl("get", "ma", "-o", "wide", "--field-selector", f"spec.network={network}").stdout
    header, *rows = table.splitlines()
    assert re.split(r"\s{2,}", header)[:8] == MESH_AGENT_COLUMNS[:8]
    assert len(rows) == 3
    for row in rows:
        columns = re.split(r"\s{2,}", row)
        assert columns[5:8] == ["userspace", "2/2", "True"], row


def test_a_joining_node_is_added_everywhere_and_a_deleted_one_removed_everywhere(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str
) -> None:
    nodes = ["a", "b", "c", "d"]
    agents = bed(nodes)
    for name in nodes[:3]:
        agents.start(name)
    wait_for_agents(mesh, network, ready_with_peers(agents, nodes[:3], 2), timeout=90)
    ifindexes = {name: agents.ifindex(name) for name in nodes[:3]}

    agents.start("d")
    objects = wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 3), timeout=90)
    d_key = agents.public_key("d")
    for name in nodes[:3]:
        assert d_key in agents.wg_peers(name)
        agents.ping(name, mesh_address(objects[agents.node_name("d")]))
        assert agents.ifindex(name) == ifindexes[name], "nothing was restarted or recreated"

    mesh.delete_agent(agents.node_name("d"))
    wait_for_link_gone(agents.node("d"), agents.node("d").wg_ifname)
    wait_for_agents(
        mesh,
        network,
        lambda objs: (
            agents.node_name("d") not in objs and ready_with_peers(agents, nodes[:3], 2)(objs)
        ),
        timeout=60,
    )
    for name in nodes[:3]:
        assert d_key not in agents.wg_peers(name)
    assert agents.agents["d"].process.poll() is None, "the agent keeps running, waiting"


def test_a_restarted_agent_keeps_key_address_and_interface_and_traffic_keeps_flowing(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str
) -> None:
    nodes = ["a", "b", "c"]
    agents = bed(nodes)
    for name in nodes:
        agents.start(name)
    before = wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 2), timeout=90)
    key, index = agents.public_key("a"), agents.ifindex("a")
    b_address = mesh_address(before[agents.node_name("b")])
    c_address = mesh_address(before[agents.node_name("c")])

    streams = [
        PingStream(agents.stream("a", "ping", "-n", "-i", "0.02", b_address)),
        PingStream(agents.stream("b", "ping", "-n", "-i", "0.02", c_address)),
    ]
    # The window is counted in replies, not in time: a fast restart must not make it short.
    for stream in streams:
        stream.wait_for_replies(10)
    assert agents.agents["a"].stop(signal.SIGTERM) == 0
    restarted = agents.start("a")
    restarted.phase("configured")
    for stream in streams:
        stream.wait_for_replies(10)
    results = [stream.stop() for stream in streams]

    after = mesh.get_agent(agents.node_name("a"))
    assert agents.public_key("a") == key
    assert after["spec"]["publicKey"] == key
    assert addresses(after) == addresses(before[agents.node_name("a")])
    assert agents.ifindex("a") == index, "the interface was not recreated"
    for pings, out in results:
        assert len(pings.answered) >= 20, out
        # Every request up to the last reply was answered; the one or two sent just before
        # SIGINT may still have been on the wire (ping does not wait for them).
        assert pings.lost == [], out


def test_the_mesh_outlives_the_operator_and_a_new_node_waits_for_it(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str, operator: OperatorProcess
) -> None:
    nodes = ["a", "b", "c"]
    agents = bed(nodes)
    for name in nodes[:2]:
        agents.start(name)
    objects = wait_for_agents(mesh, network, ready_with_peers(agents, nodes[:2], 1), timeout=90)
    operator.stop()

    agents.ping("a", mesh_address(objects[agents.node_name("b")]))
    c = agents.start("c")
    c.phase("registered")
    pending = mesh.get_agent(agents.node_name("c"))
    assert addresses(pending) == []
    assert agents.ifindex("c") is None, "no interface before the permanent address"
    agents.ping("b", mesh_address(objects[agents.node_name("a")]))

    operator.start()
    objects = wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 2), timeout=90)
    agents.ping("c", mesh_address(objects[agents.node_name("a")]))
    agents.ping("b", mesh_address(objects[agents.node_name("c")]))


def test_in_hub_topology_spokes_reach_each_other_only_through_the_hub(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str
) -> None:
    nodes = ["h", "s1", "s2"]
    agents = bed(nodes, topology="Hub")
    # role is admin-owned: the admin promotes h once it has registered (the agent no
    # longer writes spec.role, and its token could not).
    agents.start("h").phase("registered")
    mesh.patch_agent(agents.node_name("h"), {"spec": {"role": "Hub"}})
    agents.start("s1")
    agents.start("s2")
    objects = wait_for_agents(
        mesh,
        network,
        lambda objs: (
            ready_with_peers(agents, ["h"], 2)(objs)
            and ready_with_peers(agents, ["s1", "s2"], 1)(objs)
        ),
        timeout=90,
    )
    hub_key = agents.public_key("h")
    assert agents.wg_peers("s1") == {hub_key}
    assert agents.wg_peers("s2") == {hub_key}
    s2_address = mesh_address(objects[agents.node_name("s2")])
    assert f"{s2_address}/32" in agents.wg_allowed_ips("s1")[hub_key]
    # s1's only peer is the hub: a reply proves the hub forwarded both ways.
    agents.ping("s1", s2_address)
    agents.ping("s2", mesh_address(objects[agents.node_name("s1")]))
