"""Ledger ConfigMap names (the operator's ledger store): DNS subdomains, unique, and named
the same way in the Events that point at them."""

from __future__ import annotations

import re
from typing import cast

from reef.ipam import Problem, ProblemKind
from reef.kube.client import Kube
from reef.operator.context import unreadable_entry_message
from reef.operator.ledger_store import LedgerStore, shard_configmap_name

SHARD = "v4-100-64-0-0"
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?")


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


def test_configmap_name_stays_a_unique_dns_subdomain_for_long_network_names() -> None:
    shard = "v6-fd000000000000000000000000000000"
    assert shard_configmap_name("default", "v4-100-64-0-0") == "reef-ipam-default-v4-100-64-0-0"
    long_a, long_b = "a" * 240 + "x", "a" * 240 + "y"
    name_a, name_b = shard_configmap_name(long_a, shard), shard_configmap_name(long_b, shard)
    assert name_a != name_b
    for name in (name_a, name_b):
        assert len(name) <= 253
        assert DNS_SUBDOMAIN.fullmatch(name)
        assert name.endswith(shard)
