"""A pool that overlaps a range the cluster uses is flagged with the range and its owner."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import pytest

from reef.api import names
from tests.support.mesh import Body, MeshApi, condition, wait_for_event, wait_for_objects
from tests.support.operator_process import OperatorProcess
from tests.testbed.clients import KubeCLI


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


CHART = Path(__file__).resolve().parents[2] / "charts" / "reef"
#: How long the API server may take to start enforcing a just-created policy.
POLICY_ACTIVE_SECONDS = 30.0


@pytest.fixture
def pool_policies(helm: KubeCLI, kubectl: KubeCLI, network: str) -> Iterator[None]:
    """The chart's pool admission policies, applied alone for this test."""
    rendered = helm(
        "template",
        network[:30],
        str(CHART),
        "--show-only",
        "templates/pool-policy.yaml",
        # as `helm install` finds it on this cluster (Kubernetes >= 1.33)
        "--api-versions",
        "networking.k8s.io/v1/ServiceCIDR",
    ).stdout
    kubectl("apply", "-f", "-", input=rendered)
    yield
    kubectl("delete", "--ignore-not-found", "-f", "-", input=rendered)


def _refusal(mesh: MeshApi, name: str, pool: str) -> str:
    """The admission message for a dry-run create of a network with ``pool``.

    The policies were just created; the API server enforces them once its policy
    informer has compiled them, so this retries (dry-run, nothing is stored) until the
    refusal comes or the deadline passes.
    """
    body = {
        "apiVersion": names.API_VERSION,
        "kind": names.MESH_NETWORK_KIND,
        "metadata": {"name": name},
        "spec": {"cidrs": [pool]},
    }
    deadline = time.monotonic() + POLICY_ACTIVE_SECONDS
    while time.monotonic() < deadline:
        try:
            mesh.custom.create_cluster_custom_object(
                names.GROUP, names.VERSION, names.MESH_NETWORK_PLURAL, body, dry_run="All"
            )
        except kubernetes.client.ApiException as error:
            if error.status != 422:
                raise
            message: str = json.loads(error.body or "{}")["message"]
            return message
        time.sleep(0.5)  # back-off between dry runs while the policy becomes active
    raise AssertionError(f"pool {pool} was admitted for {POLICY_ACTIVE_SECONDS:.0f}s")


def test_pools_overlapping_the_service_range_or_a_node_are_refused_at_admission(
    mesh: MeshApi, network: str, node_with_ranges: str, pool_policies: None
) -> None:
    message = _refusal(mesh, f"{network}-svc", "10.0.0.0/16")
    assert "spec.cidrs overlaps 10.0.0.0/24 (Service range) of ServiceCIDR kubernetes" in message
    message = _refusal(mesh, f"{network}-pod", "10.250.0.0/16")
    assert f"10.250.3.0/24 (podCIDR) of Node {node_with_ranges}" in message
    message = _refusal(mesh, f"{network}-ip", "198.51.100.0/24")
    assert f"198.51.100.10 (InternalIP) of Node {node_with_ranges}" in message
    # A pool that overlaps nothing is admitted (really created, then removed by the fixture).
    mesh.create_network(network, ["100.126.0.0/24"])
