"""The operator names a ledger ConfigMap one way: the way the ledger store writes it."""

from __future__ import annotations

from typing import cast

from reef.ipam import Problem, ProblemKind, shard_configmap_name
from reef.kube.client import Kube
from reef.operator.context import unreadable_entry_message
from reef.operator.ledger_store import LedgerStore

SHARD = "v4-100-64-0-0"


def _message(network: str) -> str:
    store = LedgerStore(cast(Kube, None), "reef-system", network)
    problem = Problem(SHARD, "100.64.0.9", ProblemKind.BAD_VALUE, "not JSON")
    return unreadable_entry_message(store, problem)


def test_unreadable_entry_event_names_the_configmap_of_a_short_network() -> None:
    assert "ConfigMap reef-system/reef-ipam-default-v4-100-64-0-0." in _message("default")


def test_unreadable_entry_event_names_the_hashed_configmap_of_a_long_network() -> None:
    network = "n" * 250
    name = shard_configmap_name(network, SHARD)
    assert name != f"reef-ipam-{network}-{SHARD}"  # long names are shortened with a hash
    assert f"ConfigMap reef-system/{name}." in _message(network)
