"""Allocation against a real API server with the real operator process."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address, ip_network

from tests.support.mesh import (
    MeshApi,
    addresses,
    all_allocated,
    condition,
    wait_for_agents,
)
from tests.support.operator_process import OperatorProcess
from tests.testbed.controlplane import free_port

CIDR = "100.64.0.0/16"


def test_two_hundred_concurrent_agents_get_distinct_addresses_matching_the_ledger(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str, ledger_namespace: str
) -> None:
    operators().start()
    mesh.create_network(network, [CIDR])
    names = [f"{network}-n{i:03d}" for i in range(200)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda name: mesh.create_agent(name, network), names))

    agents = wait_for_agents(mesh, network, all_allocated(200), timeout=120)

    held = {name: addresses(body) for name, body in agents.items()}
    flat = [address for values in held.values() for address in values]
    assert all(len(values) == 1 for values in held.values())
    assert len(set(flat)) == 200, "two agents share an address"
    pool_network = ip_network(CIDR)
    assert all(ip_address(address) in pool_network for address in flat)
    owners = mesh.ledger_owners(ledger_namespace, network)
    ledger_view = {
        key: owner["name"] for key, owner in owners.items() if owner["state"] == "allocated"
    }
    status_view = {values[0]: name for name, values in held.items()}
    assert ledger_view == status_view
    for body in agents.values():
        allocated = condition(body, "Allocated")
        assert allocated is not None
        assert allocated["status"] == "True"
        assert allocated["reason"] == "Allocated"


def test_agent_of_a_missing_network_waits_pending_then_gets_an_address(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    operators().start()
    mesh.create_agent(f"{network}-early", network)

    def pending(objects: dict[str, dict]) -> bool:  # type: ignore[type-arg]
        found = condition(objects.get(f"{network}-early", {}), "Allocated")
        return found is not None and found["reason"] == "Pending"

    wait_for_agents(mesh, network, pending)
    mesh.create_network(network, [CIDR])
    wait_for_agents(mesh, network, all_allocated(1))


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def _scrape_until(
    port: int, done: Callable[[dict[str, float]], bool], timeout: float = 30.0
) -> dict[str, float]:
    """Scrape /metrics until ``done`` holds. A metric has no watch to wait on; each scrape
    takes milliseconds, and a short pause between them keeps the loop from spinning."""
    deadline = time.monotonic() + timeout
    while True:
        samples = _scrape(port)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_operator_metrics_count_allocations_and_ledger_writes(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    port = free_port()
    operators(env={"REEF_METRICS_PORT": str(port)}).start()
    mesh.create_network(network, [CIDR])
    for i in range(3):
        mesh.create_agent(f"{network}-m{i}", network)
    wait_for_agents(mesh, network, all_allocated(3))

    label = f'network="{network}"'
    # The operator counts an allocation once its status write has returned, so a watcher
    # can see the address a moment before the counter moves: scrape until it has.
    samples = _scrape_until(
        port, lambda s: s.get(f"reef_operator_allocation_latency_seconds_count{{{label}}}") == 3
    )
    assert samples[f'reef_operator_allocations_total{{kind="new",{label}}}'] == 3
    assert samples[f'reef_operator_ledger_writes_total{{{label},outcome="written"}}'] >= 1
    assert samples[f"reef_operator_allocation_latency_seconds_count{{{label}}}"] == 3
