"""A MeshNetwork's deletion waits for its members; afterwards nothing of it is left."""

from __future__ import annotations

from collections.abc import Callable

from reef.api import names
from tests.support.mesh import (
    Body,
    MeshApi,
    all_allocated,
    condition,
    wait_for_agents,
    wait_for_event,
    wait_for_objects,
)
from tests.support.operator_process import OperatorProcess


def _network(mesh: MeshApi, network: str, done: Callable[[Body], bool]) -> dict[str, Body]:
    return wait_for_objects(
        mesh,
        names.MESH_NETWORK_PLURAL,
        lambda objs: done(objs.get(network) or {}),
        field_selector=f"metadata.name={network}",
        timeout=30,
    )


def test_deleting_a_network_waits_for_its_members_then_removes_the_ledger(
    mesh: MeshApi,
    operators: Callable[..., OperatorProcess],
    network: str,
    ledger_namespace: str,
) -> None:
    operators().start()
    mesh.create_network(network, ["100.64.0.0/24"], reuseCooldown="0s")
    members = [f"{network}-{i}" for i in range(3)]
    for name in members:
        mesh.create_agent(name, network)
    wait_for_agents(mesh, network, all_allocated(3))
    _network(
        mesh,
        network,
        lambda body: names.NETWORK_FINALIZER in (body["metadata"].get("finalizers") or []),
    )
    assert mesh.ledger(ledger_namespace, network)

    mesh.custom.delete_cluster_custom_object(
        names.GROUP, names.VERSION, names.MESH_NETWORK_PLURAL, network
    )

    def blocked(body: Body) -> bool:
        ready = condition(body, "Ready") or {}
        return ready.get("reason") == "DeletionWaitsForMembers" and "3 MeshAgent" in ready.get(
            "message", ""
        )

    objects = _network(mesh, network, blocked)
    ready = condition(objects[network], "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert f"--field-selector spec.network={network}" in ready["message"]
    event = wait_for_event(mesh, network, "NetworkInUse")
    assert "3 MeshAgent(s)" in (event.message or "")
    assert mesh.ledger(ledger_namespace, network), "the ledger stays while members hold addresses"

    for name in members:
        mesh.delete_agent(name)
    _network(mesh, network, lambda body: not body)  # the network is gone for good
    assert mesh.ledger(ledger_namespace, network) == []
