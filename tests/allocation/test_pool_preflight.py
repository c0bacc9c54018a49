"""A pool that overlaps a range the cluster uses is flagged with the range and its owner."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import kubernetes
import pytest

from reef.api import names
from tests.support.mesh import Body, MeshApi, condition, wait_for_event, wait_for_objects
from tests.support.operator_process import OperatorProcess


@pytest.fixture
def node_with_ranges(mesh: MeshApi, network: str) -> Iterator[str]:
    """A Node with a pod CIDR and an InternalIP, as a kubelet and the IPAM would set them."""
    name = f"{network}-node"
    mesh.core.create_node(
        kubernetes.client.V1Node(
            metadata=kubernetes.client.V1ObjectMeta(name=name),
            spec=kubernetes.client.V1NodeSpec(
                pod_cidr="10.250.3.0/24", pod_cidrs=["10.250.3.0/24"]
            ),
        )
    )
    mesh.core.patch_node_status(
        name, {"status": {"addresses": [{"type": "InternalIP", "address": "198.51.100.10"}]}}
    )
    yield name
    with contextlib.suppress(kubernetes.client.ApiException):
        mesh.core.delete_node(name)


def test_pools_overlapping_services_pods_nodes_or_another_pool_are_named(
    mesh: MeshApi,
    operators: Callable[..., OperatorProcess],
    network: str,
    node_with_ranges: str,
) -> None:
    operators().start()
    cases = {
        # the bed's --service-cluster-ip-range, as the API server's ServiceCIDR "kubernetes"
        f"{network}-svc": ("10.0.0.0/16", "10.0.0.0/24 of ServiceCIDR kubernetes"),
        f"{network}-pod": ("10.250.0.0/16", f"10.250.3.0/24 of Node {node_with_ranges} (podCIDR)"),
        f"{network}-ip": (
            "198.51.100.0/24",
            f"198.51.100.10 of Node {node_with_ranges} (InternalIP)",
        ),
        f"{network}-a": ("100.127.0.0/24", f"100.127.0.0/25 of MeshNetwork {network}-b"),
        f"{network}-b": ("100.127.0.0/25", f"100.127.0.0/24 of MeshNetwork {network}-a"),
    }
    try:
        for name, (pool, _) in cases.items():
            mesh.create_network(name, [pool])

        def all_flagged(objects: dict[str, Body]) -> bool:
            return all(
                (condition(objects.get(n) or {}, "Ready") or {}).get("reason") == "PoolOverlaps"
                for n in cases
            )

        objects = wait_for_objects(mesh, names.MESH_NETWORK_PLURAL, all_flagged, timeout=30)
        for name, (pool, named) in cases.items():
            ready = condition(objects[name], "Ready")
            assert ready is not None
            assert ready["status"] == "False"
            assert f"pool {pool} overlaps {named}" in ready["message"], ready
        event = wait_for_event(mesh, f"{network}-svc", "PoolOverlap")
        assert "10.0.0.0/24 of ServiceCIDR kubernetes" in (event.message or "")
    finally:
        for name in cases:
            mesh.remove_network(name)


def test_a_pool_that_overlaps_nothing_is_ready(
    mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str
) -> None:
    operators().start()
    mesh.create_network(network, ["100.126.0.0/24"])
    objects = wait_for_objects(
        mesh,
        names.MESH_NETWORK_PLURAL,
        lambda objs: (condition(objs.get(network) or {}, "Ready") or {}).get("status") == "True",
        timeout=30,
        field_selector=f"metadata.name={network}",
    )
    assert condition(objects[network], "Ready")["reason"] == "Ready"  # type: ignore[index]
