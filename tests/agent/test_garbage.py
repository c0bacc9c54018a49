"""Unusable members (valid to the API, unusable on the wire) are skipped; the mesh stays up."""

from __future__ import annotations

from collections.abc import Callable

import kubernetes.client

from tests.agent.bed import AgentBed
from tests.agent.test_mesh import mesh_address, ready_with_peers
from tests.support.mesh import Body, MeshApi, condition, wait_for_agents


def test_members_with_an_unresolvable_endpoint_or_a_stolen_address_are_skipped_and_reported(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str
) -> None:
    nodes = ["a", "b", "c"]
    agents = bed(nodes)
    for name in nodes:
        agents.start(name)
    objects = wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 2), timeout=90)
    a_address = mesh_address(objects[agents.node_name("a")])

    # External members an admin registered: both pass admission, neither can be used.
    ghost, greedy = f"{network}-ghost", f"{network}-greedy"
    mesh.create_agent(ghost, network, endpoint="ghost.invalid:51820")
    mesh.create_agent(greedy, network, extraAllowedIPs=[f"{a_address}/32"])

    def skipped_everywhere(objs: dict[str, Body]) -> bool:
        for name in nodes:
            configured = condition(objs.get(agents.node_name(name), {}), "Configured")
            if configured is None or configured["reason"] != "PeersSkipped":
                return False
            if ghost not in configured["message"] or greedy not in configured["message"]:
                return False
        return ready_with_peers(agents, nodes, 2)(objs)

    objects = wait_for_agents(mesh, network, skipped_everywhere, timeout=60)
    message = condition(objects[agents.node_name("b")], "Configured")["message"]  # type: ignore[index]
    assert "does not resolve" in message
    assert f"overlaps {a_address}/32" in message
    for name in nodes:
        assert condition(objects[agents.node_name(name)], "Configured")["status"] == "True"  # type: ignore[index]
        assert agents.wg_peers(name) == {agents.public_key(n) for n in nodes if n != name}
    agents.ping("b", a_address)
    agents.ping("c", a_address)

    events = kubernetes.client.CoreV1Api(mesh.core.api_client).list_namespaced_event(
        "default", field_selector=f"involvedObject.name={agents.node_name('a')},reason=PeerSkipped"
    )
    texts = " ".join(event.message or "" for event in events.items)
    assert ghost in texts
    assert greedy in texts
