"""Pydantic models of MeshNetwork and MeshAgent, mirroring ``crds/``.

The CRD schema is what the API server enforces at admission; these models are what
our code reads. They are lenient about unknown fields (an older operator must not choke
on a newer object) and strict about the fields it relies on.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reef.api.durations import parse_duration
from reef.api.kinds import Role, Topology
from reef.api.names import DEFAULT_NETWORK

IPNetwork = IPv4Network | IPv6Network


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class ObjectMeta(_Model):
    name: str
    uid: str = ""
    generation: int = 0
    resource_version: str = Field("", alias="resourceVersion")
    creation_timestamp: datetime | None = Field(None, alias="creationTimestamp")
    deletion_timestamp: datetime | None = Field(None, alias="deletionTimestamp")
    finalizers: tuple[str, ...] = ()


class MeshNetworkSpec(_Model):
    cidrs: tuple[str, ...]
    listen_port: int = Field(51820, alias="listenPort")
    mtu: int | None = None
    persistent_keepalive: int = Field(25, alias="persistentKeepalive")
    topology: Topology = Topology.FULL_MESH
    reuse_cooldown: str = Field("5m", alias="reuseCooldown")
    retention: str = "24h"
    routable_prefixes: tuple[str, ...] = Field((), alias="routablePrefixes")

    @field_validator("cidrs")
    @classmethod
    def _cidrs_are_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            ip_network(text, strict=True)
        return value

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        return tuple(ip_network(text, strict=True) for text in self.cidrs)

    @property
    def routable_networks(self) -> tuple[IPNetwork, ...]:
        """The admin's allowlist of prefixes members may route (unparsable entries dropped:
        the CRD refuses them, so only a hand-edited object could carry one)."""
        return _parse_networks(self.routable_prefixes)

    @property
    def reuse_cooldown_delta(self) -> timedelta:
        return parse_duration(self.reuse_cooldown)

    @property
    def retention_delta(self) -> timedelta:
        return parse_duration(self.retention)


class MeshAgentSpec(_Model):
    """A member's spec. Node-owned (the member's credentials may write them): node_name,
    public_key, endpoint. Admin-owned (they change what other members do; the admission
    policy keeps members' credentials off them): role, requested_addresses,
    extra_allowed_ips, persistent_keepalive."""

    network: str = DEFAULT_NETWORK
    role: Role = Role.AGENT
    node_name: str = Field("", alias="nodeName")
    public_key: str = Field("", alias="publicKey")
    endpoint: str = ""
    requested_addresses: tuple[str, ...] = Field((), alias="requestedAddresses")
    extra_allowed_ips: tuple[str, ...] = Field((), alias="extraAllowedIPs")
    persistent_keepalive: int | None = Field(None, alias="persistentKeepalive")


class Condition(_Model):
    type: str
    status: str
    reason: str
    message: str = ""
    last_transition_time: str = Field("", alias="lastTransitionTime")
    observed_generation: int = Field(0, alias="observedGeneration")


class UnreachableMember(_Model):
    name: str = ""
    unreachable_from: int = Field(0, alias="unreachableFrom")
    observers: int = 0


class MeshNetworkStatus(_Model):
    """What the operator publishes on a MeshNetwork (the CRD's schema, field for field)."""

    capacity: int = 0
    allocated: int = 0
    reserved: int = 0
    cluster_prefixes: tuple[str, ...] = Field((), alias="clusterPrefixes")
    agents_ready: int = Field(0, alias="agentsReady")
    unreachable_members: tuple[UnreachableMember, ...] = Field((), alias="unreachableMembers")
    observed_generation: int = Field(0, alias="observedGeneration")
    conditions: tuple[Condition, ...] = ()


class MeshNetwork(_Model):
    metadata: ObjectMeta
    spec: MeshNetworkSpec
    status: MeshNetworkStatus = MeshNetworkStatus()

    @property
    def cluster_networks(self) -> tuple[IPNetwork, ...]:
        """The cluster's own ranges the operator publishes (status.clusterPrefixes)."""
        return _parse_networks(self.status.cluster_prefixes)


class PeerCounts(_Model):
    total: int = 0
    healthy: int = 0


class DataplaneStatus(_Model):
    backend: str = ""
    backend_reason: str = Field("", alias="backendReason")
    interface: str = ""
    configured_addresses: tuple[str, ...] = Field((), alias="configuredAddresses")
    listen_port: int = Field(0, alias="listenPort")
    peers: PeerCounts = PeerCounts()
    last_sync: str = Field("", alias="lastSync")


class MeshAgentStatus(_Model):
    addresses: tuple[str, ...] = ()
    allocated_at: str = Field("", alias="allocatedAt")
    observed_generation: int = Field(0, alias="observedGeneration")
    conditions: tuple[Condition, ...] = ()
    dataplane: DataplaneStatus | None = None


class MeshAgent(_Model):
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


def _parse_networks(texts: Iterable[Any]) -> tuple[IPNetwork, ...]:
    parsed = []
    for text in texts:
        try:
            parsed.append(ip_network(str(text), strict=False))
        except ValueError:
            continue
    return tuple(parsed)


def parse_mesh_agent(body: Any) -> MeshAgent:
    """Read a MeshAgent from an API object (a kopf body or a client dict)."""
    return MeshAgent.model_validate(_plain_top(body))


def parse_mesh_network(body: Any) -> MeshNetwork:
    """Read a MeshNetwork from an API object (a kopf body or a client dict)."""
    return MeshNetwork.model_validate(_plain_top(body))


def _plain_top(body: Any) -> Any:
    """A dict is already plain (client JSON, or :func:`plain`'s copy of a kopf body): no
    second deep copy of it; only a kopf view is copied."""
    return body if isinstance(body, dict) else plain(body)


def plain(body: Any) -> Any:
    """kopf hands out read-only mapping views; pydantic wants plain dicts."""
    if hasattr(body, "items") and not isinstance(body, dict):
        return {k: plain(v) for k, v in body.items()}
    if isinstance(body, dict):
        return {k: plain(v) for k, v in body.items()}
    if isinstance(body, list):
        return [plain(v) for v in body]
    return body
