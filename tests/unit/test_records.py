"""The agent's plain records read API objects exactly as the operator's pydantic models do.

The records (reef.api.records) exist so that the agent never imports pydantic; these
tests generate MeshAgent and MeshNetwork objects as the API server serves them (any
optional field present or absent, numbers sometimes as strings) and compare what both
readers make of them, field for field. Objects neither may accept are refused by both,
and the record's error names the field.
"""

import dataclasses
import tracemalloc
from datetime import UTC
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reef.api import models
from reef.api.records import RecordError, read_mesh_agent, read_mesh_network

NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
TEXTS = st.text(max_size=20)
TIMESTAMPS = st.datetimes(timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
)
# The API serves integers; a hand-edited object may carry one as a string.
INTEGERS = st.integers(0, 65535) | st.integers(0, 65535).map(str)
ADDRESSES = st.lists(st.ip_addresses().map(str), max_size=3)
CIDRS = st.lists(st.ip_addresses(v=4).map(lambda a: f"{a}/32"), min_size=1, max_size=3)


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object of which every one of ``fields`` may be missing."""
    return st.fixed_dictionaries({}, optional=fields)


METADATA = st.fixed_dictionaries(
    {"name": NAMES},
    optional={
        "uid": TEXTS,
        "generation": INTEGERS,
        "resourceVersion": st.integers(1, 10**9).map(str),
        "creationTimestamp": TIMESTAMPS,
        "deletionTimestamp": TIMESTAMPS,
        "finalizers": st.lists(TEXTS, max_size=2),
    },
)
CONDITION = st.fixed_dictionaries(
    {"type": TEXTS, "status": st.sampled_from(["True", "False", "Unknown"]), "reason": TEXTS},
    optional={"message": TEXTS, "lastTransitionTime": TIMESTAMPS, "observedGeneration": INTEGERS},
)
AGENT_SPEC = optional(
    network=NAMES,
    role=st.sampled_from(["Agent", "Hub"]),
    nodeName=NAMES,
    publicKey=TEXTS,
    endpoint=TEXTS,
    requestedAddresses=ADDRESSES,
    extraAllowedIPs=ADDRESSES,
    persistentKeepalive=INTEGERS,
)
DATAPLANE = optional(
    backend=st.sampled_from(["kernel", "userspace"]),
    backendReason=TEXTS,
    interface=NAMES,
    configuredAddresses=ADDRESSES,
    listenPort=INTEGERS,
    peers=optional(total=INTEGERS, healthy=INTEGERS),
    lastSync=TIMESTAMPS,
)
AGENT_STATUS = optional(
    addresses=ADDRESSES,
    allocatedAt=TIMESTAMPS,
    observedGeneration=INTEGERS,
    conditions=st.lists(CONDITION, max_size=3),
    dataplane=DATAPLANE,
)
AGENTS = st.fixed_dictionaries(
    {"metadata": METADATA, "spec": AGENT_SPEC}, optional={"status": AGENT_STATUS}
)
NETWORK_SPEC = st.fixed_dictionaries(
    {"cidrs": CIDRS},
    optional={
        "listenPort": INTEGERS,
        "mtu": INTEGERS,
        "persistentKeepalive": INTEGERS,
        "topology": st.sampled_from(["FullMesh", "Hub"]),
        "reuseCooldown": st.sampled_from(["0", "30s", "5m"]),
        "retention": st.sampled_from(["1h", "24h"]),
        "routablePrefixes": CIDRS,
    },
)
NETWORK_STATUS = optional(
    capacity=INTEGERS,
    allocated=INTEGERS,
    reserved=INTEGERS,
    clusterPrefixes=CIDRS,
    agentsReady=INTEGERS,
    unreachableMembers=st.lists(
        optional(name=NAMES, unreachableFrom=INTEGERS, observers=INTEGERS), max_size=2
    ),
    observedGeneration=INTEGERS,
    conditions=st.lists(CONDITION, max_size=2),
)
NETWORKS = st.fixed_dictionaries(
    {"metadata": METADATA, "spec": NETWORK_SPEC}, optional={"status": NETWORK_STATUS}
)


@settings(max_examples=300)
@given(AGENTS)
def test_a_mesh_agent_reads_as_the_model_reads_it(body: dict[str, Any]) -> None:
    record = read_mesh_agent(body)
    model = models.parse_mesh_agent(body)
    assert dataclasses.asdict(record) == model.model_dump()
    ready, model_ready = record.condition("Ready"), model.condition("Ready")
    assert (ready and dataclasses.asdict(ready)) == (model_ready and model_ready.model_dump())


@settings(max_examples=300)
@given(NETWORKS)
def test_a_mesh_network_reads_as_the_model_reads_it(body: dict[str, Any]) -> None:
    record = read_mesh_network(body)
    model = models.parse_mesh_network(body)
    assert dataclasses.asdict(record) == model.model_dump()
    assert record.spec.networks == model.spec.networks
    assert record.spec.routable_networks == model.spec.routable_networks
    assert record.cluster_networks == model.cluster_networks
    assert record.spec.reuse_cooldown_delta == model.spec.reuse_cooldown_delta


AGENT = {"metadata": {"name": "a"}, "spec": {}}
NETWORK = {"metadata": {"name": "n"}, "spec": {"cidrs": ["100.64.0.0/10"]}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"spec": {}}, "metadata"),
        ({"metadata": {}, "spec": {}}, "metadata.name"),
        ({"metadata": {"name": "a"}}, "spec"),
        ({**AGENT, "spec": {"role": "Leader"}}, "spec.role"),
        ({**AGENT, "spec": {"persistentKeepalive": "often"}}, "spec.persistentKeepalive"),
        ({**AGENT, "spec": {"publicKey": 7}}, "spec.publicKey"),
        ({**AGENT, "spec": {"extraAllowedIPs": "10.0.0.0/8"}}, "spec.extraAllowedIPs"),
        ({**AGENT, "status": {"addresses": [1]}}, "status.addresses[0]"),
        ({**AGENT, "status": {"conditions": [{"type": "Ready"}]}}, "status.conditions[0].status"),
        ({**AGENT, "metadata": {"name": "a", "creationTimestamp": "soon"}}, "creationTimestamp"),
        ({**AGENT, "status": {"dataplane": {"peers": {"total": 1.5}}}}, "dataplane.peers.total"),
    ],
)
def test_a_mesh_agent_neither_reader_accepts_is_refused_naming_the_field(
    body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError):
        models.parse_mesh_agent(body)
    with pytest.raises(RecordError, match=field.replace("[", r"\[").replace("]", r"\]")):
        read_mesh_agent(body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NETWORK, "spec": {}}, "spec.cidrs"),
        ({**NETWORK, "spec": {"cidrs": ["100.64.0.1/10"]}}, "spec.cidrs"),
        ({**NETWORK, "spec": {"cidrs": ["10.0.0.0/8"], "listenPort": "high"}}, "listenPort"),
        ({**NETWORK, "spec": {"cidrs": ["10.0.0.0/8"], "topology": "Ring"}}, "spec.topology"),
        ({**NETWORK, "status": {"unreachableMembers": [3]}}, "unreachableMembers[0]"),
    ],
)
def test_a_mesh_network_neither_reader_accepts_is_refused_naming_the_field(
    body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError):
        models.parse_mesh_network(body)
    with pytest.raises(RecordError, match=field.replace("[", r"\[").replace("]", r"\]")):
        read_mesh_network(body)


def test_a_null_status_reads_as_an_empty_one() -> None:
    """Some clients serve ``status: null`` for a new object (the model refuses it; the
    agent must not stop over it)."""
    record = read_mesh_agent({**AGENT, "status": None})
    assert record.status.addresses == ()
    assert record.status.dataplane is None


def test_a_record_weighs_less_than_half_a_model() -> None:
    """What the agent holds per member at 5000 members (issue 10's RSS target)."""
    body = {
        "metadata": {
            "name": "node-0001",
            "uid": "0d4f3c1e-8f6a-4c39-9a51-7c2b0f1e9d42",
            "resourceVersion": "123456",
            "creationTimestamp": "2026-12-01T10:00:00Z",
        },
        "spec": {
            "network": "default",
            "nodeName": "node-0001",
            "publicKey": "x" * 44,
            "endpoint": "198.18.0.1:51820",
        },
        "status": {
            "addresses": ["100.64.0.1"],
            "conditions": [{"type": "Ready", "status": "True", "reason": "Configured"}],
        },
    }

    def allocated(read: Any) -> int:
        read(body)  # warm up: caches of the first call are not per object
        tracemalloc.start()
        try:
            kept = [read(body) for _ in range(200)]
            size, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(kept) == 200
        return size

    assert allocated(read_mesh_agent) < allocated(models.parse_mesh_agent) / 2
