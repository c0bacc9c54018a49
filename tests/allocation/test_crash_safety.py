"""Invariants under crashes and a second operator: no duplicate, no changed address."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support.mesh import MeshApi, addresses, all_allocated, wait_for_agents
from tests.support.operator_process import OperatorProcess

CIDR = "100.64.0.0/16"


class AddressHistory:
    """Every address each MeshAgent (by uid) was ever seen with, from watch events."""

    def __init__(self) -> None:
        self.seen: dict[str, set[tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def record(self, _type: str, body: dict[str, Any]) -> None:
        held = tuple(addresses(body))
        if held:
            with self._lock:
                self.seen.setdefault(body["metadata"]["uid"], set()).add(held)

    def changed(self) -> dict[str, set[tuple[str, ...]]]:
        return {uid: values for uid, values in self.seen.items() if len(values) > 1}


def assert_no_duplicates(agents: dict[str, dict[str, Any]]) -> None:
    flat = [address for body in agents.values() for address in addresses(body)]
    assert len(flat) == len(set(flat)), "an address is held by two live MeshAgents"


def test_sigkill_during_bursts_never_changes_or_duplicates_an_address(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    rounds, per_round = 10, 25
    rng = random.Random(19)
    operator = operators()
    mesh.create_network(network, [CIDR])
    history = AddressHistory()
    created = 0
    for round_number in range(rounds):
        operator.start()
        names = [f"{network}-r{round_number}-{i}" for i in range(per_round)]
        created += per_round
        # Kill at a random point: after a random number of this round's agents got addresses.
        kill_after = rng.randrange(0, per_round)
        before = created - per_round

        def enough(
            objects: dict[str, dict[str, Any]], threshold: int = before + kill_after
        ) -> bool:
            return sum(1 for body in objects.values() if addresses(body)) >= threshold

        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(mesh.create_agent, name, network) for name in names]
            wait_for_agents(mesh, network, enough, timeout=120, on_event=history.record)
            operator.kill()
            for future in futures:
                future.result()
    operator.start()
    agents = wait_for_agents(
        mesh, network, all_allocated(created), timeout=180, on_event=history.record
    )
    for body in agents.values():
        history.record("FINAL", body)
    assert history.changed() == {}, "a live MeshAgent's address changed"
    assert_no_duplicates(agents)
    assert len(agents) == created


def test_two_operators_at_once_never_hand_out_one_address_twice(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    """Two real operator processes, one API server: no address twice, none changed.

    Whether their ledger writes actually collide here depends on timing (one may lose
    every race, or they may take turns); the collision itself, made deterministic, and
    the re-read and re-plan after it are tests/unit/test_two_allocators_one_ledger.py.
    """
    first = operators("operator-a").start()
    second = operators("operator-b").start()
    mesh.create_network(network, [CIDR])
    names = [f"{network}-n{i:03d}" for i in range(120)]
    history = AddressHistory()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda name: mesh.create_agent(name, network), names))
    agents = wait_for_agents(
        mesh, network, all_allocated(120), timeout=120, on_event=history.record
    )
    assert first.process is not None
    assert first.process.returncode() is None
    assert second.process is not None
    assert second.process.returncode() is None
    assert_no_duplicates(agents)
    for body in agents.values():
        history.record("FINAL", body)
    assert history.changed() == {}
