"""MeshAgent and MeshNetwork as plain frozen records: what the agent reads.

The operator validates with the pydantic models of :mod:`reef.api.models`; the agent,
which runs on every node, reads the same objects into these slotted dataclasses instead.
Importing pydantic was ≈ 50 ms and ≈ 8 MiB of every agent's start and footprint, and a
model instance weighs about twice a record (docs/benchmarks.md). The records have the
models' attribute names, defaults and lax conversions ("51820" is a port, a timestamp
string a datetime), and tests/unit/test_records.py checks them against the models on
generated objects. The API server has already validated each object against the CRD,
so what can be wrong here is a hand-edited or older object: a :class:`RecordError`
names the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any, TypeVar

from reef.api.durations import parse_duration
from reef.api.kinds import Role, Topology
from reef.api.names import DEFAULT_NETWORK

IPNetwork = IPv4Network | IPv6Network
_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


class RecordError(ValueError):
    """An object that does not read as the CRD describes it; the message names the field."""


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """The metadata fields reef reads."""

    name: str
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    finalizers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MeshNetworkSpec:
    """A network's spec: its ranges, port, MTU, keepalive, topology and policies."""

    cidrs: tuple[str, ...]
    listen_port: int = 51820
    mtu: int | None = None
    persistent_keepalive: int = 25
    topology: Topology = Topology.FULL_MESH
    reuse_cooldown: str = "5m"
    retention: str = "24h"
    routable_prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for text in self.cidrs:
            try:
                ip_network(text, strict=True)
            except ValueError as error:
                raise RecordError(f"spec.cidrs: {error}") from None

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        return tuple(ip_network(text, strict=True) for text in self.cidrs)

    @property
    def routable_networks(self) -> tuple[IPNetwork, ...]:
        """The admin's allowlist of prefixes members may route (unparsable entries dropped,
        as the model does)."""
        return _parse_networks(self.routable_prefixes)

    @property
    def reuse_cooldown_delta(self) -> timedelta:
        return parse_duration(self.reuse_cooldown)

    @property
    def retention_delta(self) -> timedelta:
        return parse_duration(self.retention)


@dataclass(frozen=True, slots=True)
class MeshAgentSpec:
    """A member's spec; who owns which field: :class:`reef.api.models.MeshAgentSpec`."""

    network: str = DEFAULT_NETWORK
    role: Role = Role.AGENT
    node_name: str = ""
    public_key: str = ""
    endpoint: str = ""
    requested_addresses: tuple[str, ...] = ()
    extra_allowed_ips: tuple[str, ...] = ()
    persistent_keepalive: int | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """One status condition, as the API returned it."""

    type: str
    status: str
    reason: str
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int = 0


@dataclass(frozen=True, slots=True)
class UnreachableMember:
    """A member other agents report they cannot reach."""

    name: str = ""
    unreachable_from: int = 0
    observers: int = 0


@dataclass(frozen=True, slots=True)
class MeshNetworkStatus:
    """What the operator reports about a network's addresses and agents."""

    capacity: int = 0
    allocated: int = 0
    reserved: int = 0
    cluster_prefixes: tuple[str, ...] = ()
    agents_ready: int = 0
    unreachable_members: tuple[UnreachableMember, ...] = ()
    observed_generation: int = 0
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class MeshNetwork:
    """A MeshNetwork as the agent reads it."""

    metadata: ObjectMeta
    spec: MeshNetworkSpec
    status: MeshNetworkStatus = MeshNetworkStatus()

    @property
    def cluster_networks(self) -> tuple[IPNetwork, ...]:
        """The cluster's own ranges the operator publishes (status.clusterPrefixes)."""
        return _parse_networks(self.status.cluster_prefixes)


@dataclass(frozen=True, slots=True)
class PeerCounts:
    """An agent's peers, in all and with a recent handshake."""

    total: int = 0
    healthy: int = 0


@dataclass(frozen=True, slots=True)
class DataplaneStatus:
    """What an agent reports about its interface (status.dataplane)."""

    backend: str = ""
    backend_reason: str = ""
    interface: str = ""
    configured_addresses: tuple[str, ...] = ()
    listen_port: int = 0
    peers: PeerCounts = PeerCounts()
    last_sync: str = ""


@dataclass(frozen=True, slots=True)
class MeshAgentStatus:
    """A member's status: the operator's allocation and the agent's report."""

    addresses: tuple[str, ...] = ()
    allocated_at: str = ""
    observed_generation: int = 0
    conditions: tuple[Condition, ...] = ()
    dataplane: DataplaneStatus | None = None


@dataclass(frozen=True, slots=True)
class MeshAgent:
    """A MeshAgent as the agent reads it."""

    metadata: ObjectMeta
    spec: MeshAgentSpec
    status: MeshAgentStatus = MeshAgentStatus()

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def uid(self) -> str:
        return self.metadata.uid

    def condition(self, condition_type: str) -> Condition | None:
        return next((c for c in self.status.conditions if c.type == condition_type), None)


# --- reading API objects -------------------------------------------------------------


def read_mesh_agent(body: Mapping[str, Any]) -> MeshAgent:
    """A MeshAgent from an API object (a client dict or a kopf body)."""
    spec = _section(body, "spec", required=True)
    return MeshAgent(
        metadata=_metadata(_section(body, "metadata", required=True)),
        spec=MeshAgentSpec(
            network=_str(spec, "spec", "network", DEFAULT_NETWORK),
            role=_enum(spec, "spec", "role", Role, Role.AGENT),
            node_name=_str(spec, "spec", "nodeName"),
            public_key=_str(spec, "spec", "publicKey"),
            endpoint=_str(spec, "spec", "endpoint"),
            requested_addresses=_strs(spec, "spec", "requestedAddresses"),
            extra_allowed_ips=_strs(spec, "spec", "extraAllowedIPs"),
            persistent_keepalive=_optional_int(spec, "spec", "persistentKeepalive"),
        ),
        status=_agent_status(_section(body, "status")),
    )


def read_mesh_network(body: Mapping[str, Any]) -> MeshNetwork:
    """A MeshNetwork from an API object (a client dict or a kopf body)."""
    spec = _section(body, "spec", required=True)
    if spec.get("cidrs") is None:
        raise RecordError("spec.cidrs: required")
    status = _section(body, "status")
    return MeshNetwork(
        metadata=_metadata(_section(body, "metadata", required=True)),
        spec=MeshNetworkSpec(
            cidrs=_strs(spec, "spec", "cidrs"),
            listen_port=_int(spec, "spec", "listenPort", 51820),
            mtu=_optional_int(spec, "spec", "mtu"),
            persistent_keepalive=_int(spec, "spec", "persistentKeepalive", 25),
            topology=_enum(spec, "spec", "topology", Topology, Topology.FULL_MESH),
            reuse_cooldown=_str(spec, "spec", "reuseCooldown", "5m"),
            retention=_str(spec, "spec", "retention", "24h"),
            routable_prefixes=_strs(spec, "spec", "routablePrefixes"),
        ),
        status=MeshNetworkStatus(
            capacity=_int(status, "status", "capacity"),
            allocated=_int(status, "status", "allocated"),
            reserved=_int(status, "status", "reserved"),
            cluster_prefixes=_strs(status, "status", "clusterPrefixes"),
            agents_ready=_int(status, "status", "agentsReady"),
            unreachable_members=_each(status, "status", "unreachableMembers", _unreachable_member),
            observed_generation=_int(status, "status", "observedGeneration"),
            conditions=_each(status, "status", "conditions", _condition),
        ),
    )


def _agent_status(status: Mapping[str, Any]) -> MeshAgentStatus:
    dataplane = _section(status, "dataplane", where="status")
    return MeshAgentStatus(
        addresses=_strs(status, "status", "addresses"),
        allocated_at=_str(status, "status", "allocatedAt"),
        observed_generation=_int(status, "status", "observedGeneration"),
        conditions=_each(status, "status", "conditions", _condition),
        dataplane=None if status.get("dataplane") is None else _dataplane(dataplane),
    )


def _dataplane(section: Mapping[str, Any]) -> DataplaneStatus:
    where = "status.dataplane"
    peers = _section(section, "peers", where=where)
    return DataplaneStatus(
        backend=_str(section, where, "backend"),
        backend_reason=_str(section, where, "backendReason"),
        interface=_str(section, where, "interface"),
        configured_addresses=_strs(section, where, "configuredAddresses"),
        listen_port=_int(section, where, "listenPort"),
        peers=PeerCounts(
            total=_int(peers, f"{where}.peers", "total"),
            healthy=_int(peers, f"{where}.peers", "healthy"),
        ),
        last_sync=_str(section, where, "lastSync"),
    )


def _metadata(meta: Mapping[str, Any]) -> ObjectMeta:
    if meta.get("name") is None:
        raise RecordError("metadata.name: required")
    return ObjectMeta(
        name=_str(meta, "metadata", "name"),
        uid=_str(meta, "metadata", "uid"),
        generation=_int(meta, "metadata", "generation"),
        resource_version=_str(meta, "metadata", "resourceVersion"),
        creation_timestamp=_timestamp(meta, "metadata", "creationTimestamp"),
        deletion_timestamp=_timestamp(meta, "metadata", "deletionTimestamp"),
        finalizers=_strs(meta, "metadata", "finalizers"),
    )


def _condition(item: Mapping[str, Any], where: str) -> Condition:
    for required in ("type", "status", "reason"):
        if item.get(required) is None:
            raise RecordError(f"{where}.{required}: required")
    return Condition(
        type=_str(item, where, "type"),
        status=_str(item, where, "status"),
        reason=_str(item, where, "reason"),
        message=_str(item, where, "message"),
        last_transition_time=_str(item, where, "lastTransitionTime"),
        observed_generation=_int(item, where, "observedGeneration"),
    )


def _unreachable_member(item: Mapping[str, Any], where: str) -> UnreachableMember:
    return UnreachableMember(
        name=_str(item, where, "name"),
        unreachable_from=_int(item, where, "unreachableFrom"),
        observers=_int(item, where, "observers"),
    )


# --- field readers: the conversions pydantic's lax mode makes for these types ---------------


def _section(
    parent: Mapping[str, Any], key: str, *, required: bool = False, where: str = ""
) -> Mapping[str, Any]:
    name = f"{where}.{key}" if where else key
    value = parent.get(key)
    if value is None:
        if required:
            raise RecordError(f"{name}: required")
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(f"{name}: expected an object, got {type(value).__name__}")
    return value


def _str(section: Mapping[str, Any], where: str, key: str, default: str = "") -> str:
    value = section.get(key, default)
    if not isinstance(value, str):
        raise RecordError(f"{where}.{key}: expected a string, got {value!r}")
    return value


def _int(section: Mapping[str, Any], where: str, key: str, default: int = 0) -> int:
    value = section.get(key, default)
    try:
        return _as_int(value)
    except (TypeError, ValueError):
        raise RecordError(f"{where}.{key}: expected an integer, got {value!r}") from None


def _optional_int(section: Mapping[str, Any], where: str, key: str) -> int | None:
    return None if section.get(key) is None else _int(section, where, key)


def _as_int(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(value)


def _enum(section: Mapping[str, Any], where: str, key: str, kind: type[_E], default: _E) -> _E:
    value = section.get(key, default)
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise RecordError(f"{where}.{key}: expected one of {choices}, got {value!r}") from None


def _strs(section: Mapping[str, Any], where: str, key: str) -> tuple[str, ...]:
    values = section.get(key, ())
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise RecordError(f"{where}.{key}: expected a list, got {values!r}")
    items = tuple(values)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise RecordError(f"{where}.{key}[{index}]: expected a string, got {item!r}")
    return items


def _each(
    section: Mapping[str, Any],
    where: str,
    key: str,
    read: Callable[[Mapping[str, Any], str], _T],
) -> tuple[_T, ...]:
    values = section.get(key, ())
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise RecordError(f"{where}.{key}: expected a list, got {values!r}")
    read_items = []
    for index, item in enumerate(values):
        if not isinstance(item, Mapping):
            raise RecordError(f"{where}.{key}[{index}]: expected an object, got {item!r}")
        read_items.append(read(item, f"{where}.{key}[{index}]"))
    return tuple(read_items)


def _timestamp(section: Mapping[str, Any], where: str, key: str) -> datetime | None:
    value = section.get(key)
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise RecordError(f"{where}.{key}: expected an RFC 3339 timestamp, got {value!r}")


def _parse_networks(texts: Iterable[Any]) -> tuple[IPNetwork, ...]:
    parsed = []
    for text in texts:
        try:
            parsed.append(ip_network(str(text), strict=False))
        except ValueError:
            continue
    return tuple(parsed)
