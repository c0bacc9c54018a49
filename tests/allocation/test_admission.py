"""Invalid objects are refused by the API server at admission, with a message that helps."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import pytest

from reef.api import names
from tests.support.mesh import MeshApi, random_public_key


def _create(mesh: MeshApi, plural: str, body: dict[str, Any]) -> kubernetes.client.ApiException:
    with pytest.raises(kubernetes.client.ApiException) as caught:
        mesh.custom.create_cluster_custom_object(names.GROUP, names.VERSION, plural, body)
    return caught.value


def _network(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.MESH_NETWORK_KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def _agent(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.MESH_AGENT_KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"cidrs": ["100.64.0.0/33"]}, "must be a CIDR"),
        ({"cidrs": ["not-a-cidr"]}, "must be a CIDR"),
        ({"cidrs": ["100.64.0.1/10"]}, "no host bits set"),
        ({"cidrs": ["100.64.0.0/10", "10.0.0.0/8"]}, "at most one IPv4 and one IPv6"),
        ({"cidrs": []}, "should have at least 1 items"),
        ({"cidrs": ["100.64.0.0/10"], "reuseCooldown": "five minutes"}, "reuseCooldown"),
        ({"cidrs": ["100.64.0.0/10"], "topology": "Ring"}, "FullMesh"),
        ({"cidrs": ["100.64.0.0/10"], "routablePrefixes": ["10.9.0.0/33"]}, "must be a CIDR"),
        ({"cidrs": ["100.64.0.0/10"], "routablePrefixes": ["10.9.0.1/16"]}, "no host bits set"),
        (
            {"cidrs": ["100.64.0.0/10"], "routablePrefixes": ["100.64.8.0/24"]},
            "routablePrefixes must not overlap the pool",
        ),
        (
            {"cidrs": ["100.64.0.0/10", "fd00:1::/64"], "routablePrefixes": ["::/0"]},
            "routablePrefixes must not overlap the pool",
        ),
    ],
    ids=[
        "prefix-too-long",
        "garbage",
        "host-bits",
        "two-ipv4",
        "empty",
        "duration",
        "topology",
        "routable-garbage",
        "routable-host-bits",
        "routable-inside-pool",
        "routable-around-pool",
    ],
)
def test_invalid_mesh_network_is_rejected_with_a_clear_message(
    mesh: MeshApi, unique_name: Any, spec: dict[str, Any], expected: str
) -> None:
    error = _create(mesh, names.MESH_NETWORK_PLURAL, _network(unique_name("bad"), **spec))
    assert error.status == 422
    assert expected in json.loads(error.body or "{}")["message"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"publicKey": "not-a-key"}, "WireGuard public key"),
        ({"publicKey": "A" * 44}, "WireGuard public key"),  # 33 bytes
        ({"publicKey": "A" * 42 + "B="}, "WireGuard public key"),  # non-canonical tail bits
        ({"publicKey": None}, "publicKey: Required value"),
        ({"requestedAddresses": ["100.64.0.300"]}, "must be a single IP address"),
        ({"requestedAddresses": ["100.64.0.7/32"]}, "must be a single IP address"),
        ({"requestedAddresses": ["100.64.0.7", "100.64.0.8"]}, "at most one IPv4 and one IPv6"),
        ({"endpoint": "198.51.100.7"}, "host:port"),
        ({"endpoint": "198.51.100.7:70000"}, "host:port"),
        ({"endpoint": "[not-ipv6]:51820"}, "host:port"),
        ({"extraAllowedIPs": ["192.168.10.0/33"]}, "must be a CIDR"),
        ({"role": "Leader"}, "Agent"),
        ({"persistentKeepalive": 70000}, "65535"),
    ],
    ids=[
        "key-garbage",
        "key-wrong-length",
        "key-noncanonical",
        "key-missing",
        "requested-bad-ip",
        "requested-with-prefix",
        "requested-two-ipv4",
        "endpoint-no-port",
        "endpoint-port-range",
        "endpoint-bad-ipv6",
        "extra-allowed-bad-cidr",
        "role",
        "keepalive-range",
    ],
)
def test_invalid_mesh_agent_is_rejected_with_a_clear_message(
    mesh: MeshApi, unique_name: Any, spec: dict[str, Any], expected: str
) -> None:
    fields = {"network": "default", "publicKey": random_public_key(), **spec}
    fields = {key: value for key, value in fields.items() if value is not None}
    error = _create(mesh, names.MESH_AGENT_PLURAL, _agent(unique_name("bad"), **fields))
    assert error.status == 422
    assert expected in json.loads(error.body or "{}")["message"]


def test_valid_agent_with_ipv6_endpoint_and_dual_stack_request_is_accepted(
    mesh: MeshApi, unique_name: Any
) -> None:
    name = unique_name("ok")
    created: Any = mesh.custom.create_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.MESH_AGENT_PLURAL,
        _agent(
            name,
            network=unique_name("nonet"),
            publicKey=random_public_key(),
            endpoint="[2001:db8::7]:51820",
            requestedAddresses=["100.64.0.9", "fd00::9"],
        ),
    )
    assert created["spec"]["role"] == "Agent"
    mesh.custom.delete_cluster_custom_object(
        names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name
    )


def test_requested_addresses_and_network_cannot_change_after_creation(
    mesh: MeshApi, unique_name: Any
) -> None:
    name = unique_name("immutable")
    mesh.custom.create_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.MESH_AGENT_PLURAL,
        _agent(name, network="a", publicKey=random_public_key(), requestedAddresses=["100.64.0.9"]),
    )
    try:
        for patch, expected in (
            ({"spec": {"requestedAddresses": ["100.64.0.10"]}}, "requestedAddresses is immutable"),
            ({"spec": {"network": "b"}}, "network is immutable"),
        ):
            with pytest.raises(kubernetes.client.ApiException) as caught:
                mesh.custom.patch_cluster_custom_object(
                    names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name, patch
                )
            assert caught.value.status == 422
            assert expected in json.loads(caught.value.body or "{}")["message"]
    finally:
        mesh.custom.delete_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name
        )
