"""MeshNetwork.status is typed like MeshAgent.status: the model follows the CRD's schema."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

from reef.api.models import MeshNetworkStatus, parse_mesh_network

CRD = Path(__file__).parents[2] / "crds" / "mesh.reef.dev_meshnetworks.yaml"


def _status_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


def test_every_status_field_of_the_crd_is_a_field_of_the_model() -> None:
    aliases = {field.alias or name for name, field in MeshNetworkStatus.model_fields.items()}
    assert aliases == set(_status_schema()["properties"])


def test_a_published_status_parses_into_typed_fields() -> None:
    body = {
        "metadata": {"name": "mesh", "generation": 3},
        "spec": {"cidrs": ["100.64.0.0/16"]},
        "status": {
            "capacity": 65534,
            "allocated": 4,
            "reserved": 1,
            "clusterPrefixes": ["10.96.0.0/12", "10.244.1.0/24"],
            "agentsReady": 3,
            "unreachableMembers": [{"name": "n4", "unreachableFrom": 3, "observers": 3}],
            "observedGeneration": 3,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "PoolHealthy",
                    "message": "",
                    "lastTransitionTime": "2026-12-02T12:00:00Z",
                }
            ],
        },
    }
    network = parse_mesh_network(body)
    assert network.status.unreachable_members[0].unreachable_from == 3
    assert network.status.conditions[0].reason == "PoolHealthy"
    assert network.cluster_networks == (
        ipaddress.ip_network("10.96.0.0/12"),
        ipaddress.ip_network("10.244.1.0/24"),
    )


def test_a_network_without_status_has_the_empty_one() -> None:
    network = parse_mesh_network({"metadata": {"name": "m"}, "spec": {"cidrs": ["10.0.0.0/24"]}})
    assert network.status == MeshNetworkStatus()
    assert network.cluster_networks == ()
