"""The cluster's own ranges, published on every MeshNetwork as ``status.clusterPrefixes``.

No member may route the cluster's service range or its pods' ranges through the mesh
(DESIGN §5). Agents cannot learn those cheaply themselves: pod CIDRs sit on Node
objects, and 5000 agents watching 5000 Nodes would cost 25 million object deliveries per
round of Node updates. So the operator — one watcher — follows Nodes
(``spec.podCIDRs``) and ServiceCIDR objects (``networking.k8s.io/v1``, the API server's
own service ranges), collapses them into a few prefixes and writes them onto each
MeshNetwork, which every agent watches anyway. A write happens only when the collapsed
set changes (a Node whose pod CIDR is already covered changes nothing), so a new node
usually costs nothing here. The agents' peer planner and the routes admission policy
both read the result.

Where ServiceCIDR objects do not exist (Kubernetes < 1.33) the service range is unknown
and only the pod ranges and the allowlist guard; docs/security.md says so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubernetes import client

from reef.api import names
from reef.kube.client import Kube
from reef.kube.writes import NOT_FOUND, ApiException
from reef.operator.coalesced import run_coalesced

log = logging.getLogger(__name__)

Body = dict[str, Any]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def collapse(texts: Iterable[str]) -> list[str]:
    """The smallest sorted list of prefixes covering ``texts`` (unparsable ones dropped)."""
    by_family: dict[int, list[IPNetwork]] = {4: [], 6: []}
    for text in texts:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        by_family[net.version].append(net)
    merged: list[str] = []
    for version in (4, 6):
        merged += [str(n) for n in ipaddress.collapse_addresses(by_family[version])]  # type: ignore[type-var]
    return merged


def node_pod_cidrs(body: Mapping[str, Any]) -> tuple[str, ...]:
    spec = body.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return tuple(cidrs)


def service_cidrs(body: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple((body.get("spec") or {}).get("cidrs") or [])


class ClusterRanges:
    """Pod and service ranges by source object, and the writer that publishes them."""

    def __init__(self, kube: Kube, networks: Callable[[], Mapping[str, Body]]) -> None:
        self._kube = kube
        self._networks = networks
        self._pods: dict[str, tuple[str, ...]] = {}
        self._services: dict[str, tuple[str, ...]] = {}
        self._wanted = asyncio.Event()

    async def seed(self) -> None:
        """Read every Node and ServiceCIDR once, before the first publish: a restarted
        operator must not publish a partial (smaller) set while its watches catch up."""
        nodes = await self._list(self._kube.core.list_node)
        self._pods = {n["metadata"]["name"]: c for n in nodes if (c := node_pod_cidrs(n))}
        networking = client.NetworkingV1Api(self._kube.api_client)
        try:
            ranges = await self._list(networking.list_service_cidr)
        except ApiException as error:
            if error.status != NOT_FOUND:
                raise
            log.warning("no ServiceCIDR API (Kubernetes < 1.33): the service range is unknown")
            ranges = []
        self._services = {r["metadata"]["name"]: c for r in ranges if (c := service_cidrs(r))}
        self.touch()

    async def _list(self, function: Callable[..., Any]) -> list[Body]:
        # Plain JSON, from the watch cache (resourceVersion 0): no model decoding of
        # thousands of Nodes, no quorum read.
        response = await self._kube.call(function, resource_version="0", _preload_content=False)
        return list(json.loads(response.data).get("items") or [])

    def prefixes(self) -> list[str]:
        every = [c for cidrs in (*self._pods.values(), *self._services.values()) for c in cidrs]
        return collapse(every)

    def node_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self._record(self._pods, event_type, body, node_pod_cidrs(body))

    def service_cidr_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self._record(self._services, event_type, body, service_cidrs(body))

    def _record(
        self,
        table: dict[str, tuple[str, ...]],
        event_type: str | None,  # None: kopf's initial listing
        body: Mapping[str, Any],
        cidrs: tuple[str, ...],
    ) -> None:
        name = str((body.get("metadata") or {}).get("name", ""))
        before = table.get(name)
        if event_type == "DELETED" or not cidrs:
            table.pop(name, None)
        else:
            table[name] = cidrs
        if table.get(name) != before:
            self.touch()

    def touch(self) -> None:
        """Something changed (a range, or a MeshNetwork appeared): re-check the networks."""
        self._wanted.set()

    async def run(self) -> None:
        await run_coalesced(
            self._wanted,
            self._publish,
            log=log,
            failure="could not publish the cluster's ranges on the MeshNetworks",
        )

    async def _publish(self) -> None:
        wanted = self.prefixes()
        for name, body in list(self._networks().items()):
            if list((body.get("status") or {}).get("clusterPrefixes") or []) == wanted:
                continue
            try:
                await self._kube.patch_status(
                    names.MESH_NETWORK_PLURAL, name, {"status": {"clusterPrefixes": wanted}}
                )
            except ApiException as error:
                if error.status != NOT_FOUND:
                    raise
                continue
            log.info("MeshNetwork %s: cluster ranges %s are never routed", name, wanted)
