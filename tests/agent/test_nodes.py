"""Members follow their Nodes; one dead member is named, not the whole mesh NotReady;
an admin's per-node endpoint (a Node annotation) is used by every peer and kept."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import kubernetes
import pytest

from reef.api import names
from tests.agent.bed import AgentBed, wait_for_link_gone
from tests.agent.test_mesh import mesh_address, ready_with_peers
from tests.support.mesh import (
    Body,
    MeshApi,
    addresses,
    condition,
    wait_for_agents,
    wait_for_objects,
)

NodeMaker = Callable[[str], Body]


@pytest.fixture
def kube_nodes(mesh: MeshApi) -> Iterator[NodeMaker]:
    """``kube_nodes(name)`` creates a Node object (no kubelet); all are deleted afterwards."""
    made: list[str] = []

    def make(name: str) -> Body:
        created = mesh.core.create_node(
            kubernetes.client.V1Node(metadata=kubernetes.client.V1ObjectMeta(name=name))
        )
        made.append(name)
        body: Body = mesh.core.api_client.sanitize_for_serialization(created)
        return body

    yield make
    for name in made:
        with contextlib.suppress(kubernetes.client.ApiException):
            mesh.core.delete_node(name)


def endpoints(bed: AgentBed, name: str) -> dict[str, str]:
    """Peer public key -> endpoint, as node ``name``'s device has it."""
    node = bed.node(name)
    out = node.run("wg", "show", node.wg_ifname, "endpoints").stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def test_a_deleted_node_takes_its_member_out_and_a_recreated_one_gets_its_address_back(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str, kube_nodes: NodeMaker
) -> None:
    nodes = ["a", "b", "c"]
    agents = bed(nodes)
    uids = {n: kube_nodes(agents.node_name(n))["metadata"]["uid"] for n in nodes}
    for name in nodes:
        agents.start(name)
    before = wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 2), timeout=90)
    c_name, c_key = agents.node_name("c"), agents.public_key("c")
    assert before[c_name]["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": c_name, "uid": uids["c"]}
    ]

    mesh.core.delete_node(c_name)
    # The garbage collector of kube-controller-manager deletes the MeshAgent; the
    # operator releases its address; the other agents drop the peer and stay Ready.
    wait_for_agents(
        mesh,
        network,
        lambda objs: c_name not in objs and ready_with_peers(agents, ["a", "b"], 1)(objs),
        timeout=90,
    )
    for name in ("a", "b"):
        assert c_key not in agents.wg_peers(name)
    wait_for_link_gone(agents.node("c"), agents.node("c").wg_ifname)
    agents.agents["c"].stop()

    new_uid = kube_nodes(c_name)["metadata"]["uid"]
    agents.start("c")
    after = wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 2), timeout=90)
    assert addresses(after[c_name]) == addresses(before[c_name])
    assert after[c_name]["metadata"]["ownerReferences"][0]["uid"] == new_uid


def test_an_external_member_without_a_node_is_not_garbage_collected(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str
) -> None:
    agents = bed(["a"])
    agents.start("a")
    objects = wait_for_agents(mesh, network, ready_with_peers(agents, ["a"], 0), timeout=90)
    # No Node object of that name: no owner, so nothing can collect it.
    assert "ownerReferences" not in objects[agents.node_name("a")]["metadata"]


def test_one_dead_member_is_named_while_the_others_stay_ready(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str
) -> None:
    nodes = ["a", "b", "c"]
    # A keepalive of 1 s: a dead peer is noticed after 3 silent intervals (+5 s).
    agents = bed(nodes, persistentKeepalive=1)
    for name in nodes:
        agents.start(name)
    wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 2), timeout=90)
    c_name = agents.node_name("c")

    agents.agents["c"].stop()
    agents.node("c").run("ip", "link", "del", agents.node("c").wg_ifname)

    def c_named(objs: dict[str, Body]) -> bool:
        for name in ("a", "b"):
            body = objs.get(agents.node_name(name)) or {}
            peers = ((body.get("status") or {}).get("dataplane") or {}).get("peers") or {}
            healthy = condition(body, "PeersHealthy") or {}
            if peers.get("summary") != "1/2" or c_name not in healthy.get("message", ""):
                return False
        return True

    objects = wait_for_agents(mesh, network, c_named, timeout=60)
    for name in ("a", "b"):
        body = objects[agents.node_name(name)]
        ready = condition(body, "Ready")
        assert ready is not None
        assert (ready["status"], ready["reason"]) == ("True", "SomePeersUnreachable"), ready
        assert body["status"]["dataplane"]["unreachable"] == [c_name]

    def network_names_c(objs: dict[str, Body]) -> bool:
        # Both reports are written by now, but the operator may first publish what it had
        # read of one of them ("1 of 2"): wait for it to have read both.
        reach = condition(objs.get(network) or {}, "MembersReachable")
        return (
            reach is not None
            and reach["status"] == "False"
            and f"{c_name} unreachable from 2 of 2 members" in reach["message"]
        )

    networks = wait_for_objects(
        mesh,
        names.MESH_NETWORK_PLURAL,
        network_names_c,
        timeout=30,
        field_selector=f"metadata.name={network}",
    )
    reach = condition(networks[network], "MembersReachable")
    assert reach is not None
    assert f"{c_name} unreachable from 2 of 2 members" in reach["message"], reach
    assert networks[network]["status"]["unreachableMembers"] == [
        {"name": c_name, "unreachableFrom": 2, "observers": 2}
    ]


def test_an_endpoint_annotation_on_the_node_is_used_by_every_peer_and_kept(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str, kube_nodes: NodeMaker
) -> None:
    nodes = ["a", "b", "c"]
    agents = bed(nodes)
    for name in nodes:
        kube_nodes(agents.node_name(name))
    for name in nodes:
        agents.start(name)
    objects = wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 2), timeout=90)
    c_name, c_key = agents.node_name("c"), agents.public_key("c")
    # A second address of node c, as a public IP in front of it would be.
    public = "198.18.0.200"
    agents.node("c").run("ip", "addr", "add", f"{public}/24", "dev", "eth0")

    mesh.core.patch_node(c_name, {"metadata": {"annotations": {"mesh.reef.dev/endpoint": public}}})
    marks = {n: len(agents.agents[n].records) for n in ("a", "b")}
    wait_for_agents(
        mesh,
        network,
        lambda objs: (objs.get(c_name) or {}).get("spec", {}).get("endpoint") == f"{public}:51820",
        timeout=30,
    )
    for name in ("a", "b"):
        agents.agents[name].phase("peers", timeout=30, after=marks[name])
        assert endpoints(agents, name)[c_key] == f"{public}:51820"
        agents.ping(name, mesh_address(objects[c_name]))

    # Restarting the agent (a full re-registration) keeps what the annotation says.
    agents.agents["c"].stop()
    restarted = agents.start("c")
    restarted.phase("configured")
    assert mesh.get_agent(c_name)["spec"]["endpoint"] == f"{public}:51820"
