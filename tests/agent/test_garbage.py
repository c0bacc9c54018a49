"""Unusable members (valid to the API, unusable on the wire) are skipped; the mesh stays up."""

from __future__ import annotations

from collections.abc import Callable

import kubernetes.client

from tests.agent.bed import AgentBed
from tests.agent.test_mesh import mesh_address, ready_with_peers
from tests.support.mesh import Body, MeshApi, condition, wait_for_agents


def test_an_unresolvable_member_is_skipped_and_a_stolen_address_is_never_routed(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str
) -> None:
    nodes = ["a", "b", "c"]
    agents = bed(nodes)
    for name in nodes:
        agents.start(name)
    objects = wait_for_agents(mesh, network, ready_with_peers(agents, nodes, 2), timeout=90)
    a_address = mesh_address(objects[agents.node_name("a")])

    # External members an admin registered, both valid to the API: one cannot be used on
    # the wire (its endpoint does not resolve), the other claims a's mesh address as a
    # route — inside the pool, which no member ever routes (docs/security.md).
    ghost, thief = f"{network}-ghost", f"{network}-thief"
    mesh.create_agent(ghost, network, endpoint="ghost.invalid:51820")
    mesh.create_agent(thief, network, extraAllowedIPs=[f"{a_address}/32"])

    def settled(objs: dict[str, Body]) -> bool:
        for name in nodes:
            configured = condition(objs.get(agents.node_name(name), {}), "Configured")
            if configured is None or configured["reason"] != "PeersSkipped":
                return False
            if ghost not in configured["message"] or thief in configured["message"]:
                return False
        # Each node: the two other nodes and the thief (with its own address only, and
        # never a handshake: nothing runs behind it).
        return ready_with_peers(agents, nodes, 3, healthy=2)(objs)

    objects = wait_for_agents(mesh, network, settled, timeout=60)
    message = condition(objects[agents.node_name("b")], "Configured")["message"]  # type: ignore[index]
    assert "does not resolve" in message
    thief_address = mesh_address(objects[thief])
    for name in nodes:
        assert condition(objects[agents.node_name(name)], "Configured")["status"] == "True"  # type: ignore[index]
        allowed = agents.wg_allowed_ips(name)
        thief_key = objects[thief]["spec"]["publicKey"]
        assert allowed[thief_key] == [f"{thief_address}/32"], "the stolen route was installed"
        if name != "a":
            assert allowed[agents.public_key("a")] == [f"{a_address}/32"]
    agents.ping("b", a_address)
    agents.ping("c", a_address)

    events = kubernetes.client.CoreV1Api(mesh.core.api_client).list_namespaced_event(
        "default", field_selector=f"involvedObject.name={agents.node_name('a')},reason=PeerSkipped"
    )
    texts = " ".join(event.message or "" for event in events.items)
    assert ghost in texts
