"""Repair: the ledger and the statuses heal each other; nothing is ever reassigned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.mesh import (
    MeshApi,
    addresses,
    all_allocated,
    condition,
    wait_for_agents,
    wait_for_event,
    wait_for_objects,
)
from tests.support.operator_process import OperatorProcess

CIDR = "100.64.0.0/24"


def _allocated(mesh: MeshApi, network: str, count: int) -> dict[str, list[str]]:
    agents = wait_for_agents(mesh, network, all_allocated(count))
    return {name: addresses(body) for name, body in agents.items()}


def _ledger_allocated(mesh: MeshApi, namespace: str, network: str) -> dict[str, str]:
    return {
        key: owner["name"]
        for key, owner in mesh.ledger_owners(namespace, network).items()
        if owner.get("state") == "allocated"
    }


def test_deleted_ledger_is_rebuilt_from_statuses_without_changing_an_address(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str, ledger_namespace: str
) -> None:
    operators().start()
    mesh.create_network(network, [CIDR])
    for i in range(5):
        mesh.create_agent(f"{network}-n{i}", network)
    before = _allocated(mesh, network, 5)
    expected = {values[0]: name for name, values in before.items()}
    assert _ledger_allocated(mesh, ledger_namespace, network) == expected

    for config_map in mesh.ledger(ledger_namespace, network):
        mesh.core.delete_namespaced_config_map(config_map.metadata.name, ledger_namespace)
    # A new agent arriving right after the loss must not get any of the old addresses.
    mesh.create_agent(f"{network}-late", network)
    after = _allocated(mesh, network, 6)

    assert {name: after[name] for name in before} == before
    assert after[f"{network}-late"][0] not in expected
    rebuilt = _wait_for_ledger(mesh, ledger_namespace, network, 6)
    assert {k: v for k, v in rebuilt.items() if k in expected} == expected


def _wait_for_ledger(mesh: MeshApi, namespace: str, network: str, count: int) -> dict[str, str]:
    """Watch the ledger ConfigMaps until they hold ``count`` allocated entries."""
    from kubernetes import watch

    from reef.api import names

    selector = f"{names.LEDGER_NETWORK_LABEL}={network}"
    current = _ledger_allocated(mesh, namespace, network)
    if len(current) >= count:
        return current
    stream = watch.Watch()
    for _event in stream.stream(
        mesh.core.list_namespaced_config_map,
        namespace,
        label_selector=selector,
        timeout_seconds=60,
    ):
        current = _ledger_allocated(mesh, namespace, network)
        if len(current) >= count:
            stream.stop()
            return current
    raise AssertionError(f"ledger of {network} has {len(current)} entries, wanted {count}")


def test_garbage_ledger_entry_is_reported_and_nothing_is_reassigned(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str, ledger_namespace: str
) -> None:
    # No periodic repair pass within the test: the operator's watch of its ledger must
    # notice the edit by itself.
    operators(env={"REEF_REPAIR_INTERVAL_SECONDS": "3600"}).start()
    mesh.create_network(network, [CIDR])
    for i in range(3):
        mesh.create_agent(f"{network}-n{i}", network)
    before = _allocated(mesh, network, 3)
    victim = before[f"{network}-n1"][0]
    (config_map,) = mesh.ledger(ledger_namespace, network)
    mesh.core.patch_namespaced_config_map(
        config_map.metadata.name, ledger_namespace, {"data": {victim: "{not json"}}
    )

    def reported(objects: dict[str, dict[str, Any]]) -> bool:
        ready = condition(objects.get(network, {}), "Ready")
        return ready is not None and ready["reason"] == "LedgerEntryUnreadable"

    networks = wait_for_objects(mesh, "meshnetworks", reported)
    ready = condition(networks[network], "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert victim in ready["message"]
    assert victim in (wait_for_event(mesh, network, "LedgerEntryUnreadable").message or "")

    # New agents never get the damaged address, and nobody's address changes.
    for i in range(3, 6):
        mesh.create_agent(f"{network}-n{i}", network)
    after = _allocated(mesh, network, 6)
    assert {name: after[name] for name in before} == before
    newcomers = [after[f"{network}-n{i}"][0] for i in range(3, 6)]
    assert victim not in newcomers


def test_wiped_status_gets_the_same_address_back_from_the_ledger(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    operators().start()
    mesh.create_network(network, [CIDR])
    name = f"{network}-wiped"
    mesh.create_agent(name, network)
    (original,) = _allocated(mesh, network, 1)[name]
    wiped = mesh.patch_agent_status(name, {"addresses": None, "allocatedAt": None})
    assert addresses(wiped) == []

    restored = _allocated(mesh, network, 1)[name]
    assert restored == [original]


def test_true_duplicate_keeps_the_older_owner_and_reallocates_the_newer_loudly(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    operators().start()
    mesh.create_network(network, [CIDR])
    older, newer = f"{network}-older", f"{network}-newer"
    mesh.create_agent(older, network)
    wait_for_agents(mesh, network, all_allocated(1))
    mesh.create_agent(newer, network)
    before = _allocated(mesh, network, 2)
    # A hand edit (or a restored backup) makes the newer agent claim the older one's address.
    mesh.patch_agent_status(newer, {"addresses": before[older]})

    def resolved(objects: dict[str, dict[str, Any]]) -> bool:
        held = addresses(objects.get(newer, {}))
        return bool(held) and held != before[older]

    agents = wait_for_agents(mesh, network, resolved)
    assert addresses(agents[older]) == before[older]
    assert addresses(agents[newer]) != before[older]
    conflict = wait_for_event(mesh, newer, "AddressConflict")
    assert older in (conflict.message or "")
