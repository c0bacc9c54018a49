"""The operator's view of the cluster's own ranges: collapsed, and changed only when the
collapsed set changes (each change is one status write per MeshNetwork)."""

from __future__ import annotations

from typing import Any

from reef.operator.cluster_ranges import ClusterRanges, collapse


def node(name: str, *cidrs: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"podCIDRs": list(cidrs)}}


def test_pod_cidrs_of_many_nodes_collapse_to_a_few_prefixes() -> None:
    per_node = [f"10.244.{i}.0/24" for i in range(256)]
    assert collapse([*per_node, "fd00:10::/64", "10.96.0.0/12", "not-a-cidr"]) == [
        "10.96.0.0/12",
        "10.244.0.0/16",
        "fd00:10::/64",
    ]


def test_only_a_changed_range_asks_for_a_write() -> None:
    ranges = ClusterRanges(kube=None, networks=dict)  # type: ignore[arg-type]
    ranges.node_event("ADDED", node("n1", "10.244.1.0/24"))
    assert ranges._wanted.is_set()
    ranges._wanted.clear()
    ranges.node_event("MODIFIED", node("n1", "10.244.1.0/24"))  # a status heartbeat
    assert not ranges._wanted.is_set()
    ranges.service_cidr_event(
        "ADDED", {"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/12"]}}
    )
    ranges.node_event("DELETED", node("n1", "10.244.1.0/24"))
    assert ranges.prefixes() == ["10.96.0.0/12"]
