"""Release, retention, cool-down, requested addresses and exhaustion."""

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


def _wait_gone(mesh: MeshApi, network: str, name: str) -> None:
    wait_for_agents(mesh, network, lambda objects: name not in objects)


def _allocated_reason(reason: str, name: str) -> Callable[[dict[str, dict[str, Any]]], bool]:
    def done(objects: dict[str, dict[str, Any]]) -> bool:
        found = condition(objects.get(name, {}), "Allocated")
        return found is not None and found["reason"] == reason

    return done


def test_recreated_agent_gets_its_old_address_back_within_retention(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    """In a full /30 (two usable addresses) nothing fresh is left, and the address free
    the longest is the filler's, not the returning name's: reuse alone would hand the
    name the filler's address, so only retention gives it its own back.

    Every step waits for the one before, and the returning name asks alone, so no
    batching or ordering of watch events decides. That a new identity in the *same*
    batch does not take a retained address is tests/unit/test_batcher_retention.py;
    across batches retention is soft by design (reef.ipam.allocator).
    """
    operators().start()
    mesh.create_network(network, ["100.64.0.0/30"], reuseCooldown="0s", retention="1h")
    filler, name, other = f"{network}-filler", f"{network}-sticky", f"{network}-other"
    mesh.create_agent(filler, network)
    (filler_address,) = addresses(wait_for_agents(mesh, network, all_allocated(1))[filler])
    first = mesh.create_agent(name, network)
    (address,) = addresses(wait_for_agents(mesh, network, all_allocated(2))[name])
    # The filler's address is the lower one and is released first, so it is the one free
    # the longest even where the ledger's one-second timestamps make the two equal.
    assert (filler_address, address) == ("100.64.0.1", "100.64.0.2")
    mesh.delete_agent(filler)
    _wait_gone(mesh, network, filler)
    mesh.delete_agent(name)
    _wait_gone(mesh, network, name)

    second = mesh.create_agent(name, network)
    agents = wait_for_agents(mesh, network, all_allocated(1))
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert addresses(agents[name]) == [address]

    # The pool keeps working: a new identity gets the address no name holds on to.
    mesh.create_agent(other, network)
    agents = wait_for_agents(mesh, network, all_allocated(2))
    assert addresses(agents[other]) == [filler_address]


def test_another_name_never_receives_a_cooling_down_address(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    """A /30 has two usable addresses: with one cooling down, the third agent must wait."""
    operators().start()
    mesh.create_network(network, ["100.64.0.0/30"], reuseCooldown="1h", retention="1h")
    mesh.create_agent(f"{network}-a", network)
    mesh.create_agent(f"{network}-b", network)
    agents = wait_for_agents(mesh, network, all_allocated(2))
    (released,) = addresses(agents[f"{network}-a"])
    mesh.delete_agent(f"{network}-a")
    _wait_gone(mesh, network, f"{network}-a")
    mesh.create_agent(f"{network}-c", network)

    agents = wait_for_agents(mesh, network, _allocated_reason("PoolExhausted", f"{network}-c"))
    assert addresses(agents[f"{network}-c"]) == []
    assert released not in addresses(agents[f"{network}-b"])


def test_slash29_is_exhausted_at_capacity_and_reuses_after_the_cooldown(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    operators().start()
    mesh.create_network(network, ["100.64.0.0/29"], reuseCooldown="3s", retention="1h")
    for i in range(6):
        mesh.create_agent(f"{network}-n{i}", network)
    agents = wait_for_agents(mesh, network, all_allocated(6))
    held = {address for body in agents.values() for address in addresses(body)}
    assert held == {f"100.64.0.{i}" for i in range(1, 7)}

    extra = f"{network}-n6"
    mesh.create_agent(extra, network)
    wait_for_agents(mesh, network, _allocated_reason("PoolExhausted", extra))

    def network_exhausted(objects: dict[str, dict[str, Any]]) -> bool:
        found = condition(objects.get(network, {}), "PoolExhausted")
        return found is not None and found["status"] == "True"

    networks = wait_for_objects(mesh, "meshnetworks", network_exhausted)
    assert networks[network]["status"]["capacity"] == 6
    assert networks[network]["status"]["allocated"] == 6
    assert "no address" in (wait_for_event(mesh, extra, "PoolExhausted").message or "")

    (freed,) = addresses(agents[f"{network}-n2"])
    mesh.delete_agent(f"{network}-n2")
    agents = wait_for_agents(
        mesh, network, lambda objects: bool(addresses(objects.get(extra, {}))), timeout=60
    )
    assert addresses(agents[extra]) == [freed]


def test_requested_free_address_is_granted(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    operators().start()
    mesh.create_network(network, ["100.64.0.0/24"])
    mesh.create_agent(f"{network}-static", network, requestedAddresses=["100.64.0.77"])
    agents = wait_for_agents(mesh, network, all_allocated(1))
    assert addresses(agents[f"{network}-static"]) == ["100.64.0.77"]


def test_unavailable_requested_addresses_are_refused_with_their_reason(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    operators().start()
    mesh.create_network(network, ["100.64.0.0/24"])
    mesh.create_agent(f"{network}-holder", network, requestedAddresses=["100.64.0.10"])
    wait_for_agents(mesh, network, all_allocated(1))
    cases = {
        "taken": ("100.64.0.10", "InUse"),
        "outside": ("100.65.0.1", "OutsidePool"),
        "network": ("100.64.0.0", "NetworkAddress"),
        "broadcast": ("100.64.0.255", "BroadcastAddress"),
    }
    for case, (address, _) in cases.items():
        mesh.create_agent(f"{network}-{case}", network, requestedAddresses=[address])

    def all_refused(objects: dict[str, dict[str, Any]]) -> bool:
        return all(
            (found := condition(objects.get(f"{network}-{case}", {}), "Allocated")) is not None
            and found["reason"] == "RequestedAddressUnavailable"
            for case in cases
        )

    agents = wait_for_agents(mesh, network, all_refused)
    for case, (address, reason) in cases.items():
        body = agents[f"{network}-{case}"]
        found = condition(body, "Allocated")
        assert found is not None
        assert found["status"] == "False"
        assert reason in found["message"]
        assert address in found["message"]
        assert addresses(body) == [], f"{case}: a substitute address was given"
    assert addresses(agents[f"{network}-holder"]) == ["100.64.0.10"]
