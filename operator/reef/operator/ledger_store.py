"""Reads and compare-and-swap writes of one network's ledger shards (ConfigMaps).

The ConfigMap's ``resourceVersion`` is the lock: a write names the version it was
computed from, and the API server refuses it with 409 if anyone wrote in between.
That, not kopf peering or a Lease, is what keeps two operators from handing out one
address twice.
"""

import hashlib
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

from reef.api import names
from reef.ipam import parse_shard_id
from reef.kube.client import Kube
from reef.kube.writes import CONFLICT, NOT_FOUND, ApiException

log = logging.getLogger(__name__)

SHARD_LABEL = f"{names.GROUP}/shard"
#: ConfigMap names are DNS subdomains: at most 253 characters.
MAX_OBJECT_NAME = 253
#: How many of our own recent writes per shard we recognise in (possibly late) watch events.
RECENT_VERSIONS = 32


def shard_configmap_name(network: str, shard: str) -> str:
    """``reef-ipam-<network>-<shard>``; if that exceeds 253 characters the network part is
    shortened and suffixed with a hash of the full name, so names stay unique."""
    name = f"reef-ipam-{network}-{shard}"
    if len(name) <= MAX_OBJECT_NAME:
        return name
    digest = hashlib.sha256(network.encode()).hexdigest()[:10]
    room = MAX_OBJECT_NAME - len(f"reef-ipam--{digest}-{shard}")
    return f"reef-ipam-{network[:room].rstrip('.-')}-{digest}-{shard}"


class ShardVanishedError(Exception):
    """A shard we hold entries of was deleted behind our back: rebuild before allocating."""


class LedgerStore:
    def __init__(self, kube: Kube, namespace: str, network: str) -> None:
        self._kube = kube
        self.namespace = namespace
        self.network = network
        #: resourceVersion of every shard ConfigMap as we last read or wrote it.
        self.versions: dict[str, str] = {}
        #: Versions this process wrote lately, and shards with a write in flight: watch
        #: events about them are our own echo, not someone else's edit.
        self._recent: dict[str, deque[str]] = {}
        self._in_flight: set[str] = set()

    def configmap_name(self, shard: str) -> str:
        """The ConfigMap that holds ``shard`` of this network's ledger."""
        return shard_configmap_name(self.network, shard)

    @property
    def selector(self) -> str:
        return f"{names.LEDGER_NETWORK_LABEL}={self.network}"

    def is_own_write(self, shard: str, resource_version: str) -> bool:
        """True when a watch event shows a version this process wrote or already read."""
        return (
            shard in self._in_flight
            or self.versions.get(shard) == resource_version
            or resource_version in self._recent.get(shard, ())
        )

    async def load_all(self) -> dict[str, dict[str, str]]:
        """Every shard of the network, by shard id (one LIST: the whole ledger at once)."""
        items = await self._kube.list_config_maps(self.namespace, self.selector)
        shards: dict[str, dict[str, str]] = {}
        versions: dict[str, str] = {}
        for item in items:
            shard = shard_of(item)
            if shard is None:
                name = item["metadata"]["name"]
                log.warning("ConfigMap %s has no valid shard label; ignored", name)
                continue
            shards[shard] = dict(item.get("data") or {})
            versions[shard] = item["metadata"]["resourceVersion"]
        self.versions = versions
        return shards

    async def load_one(self, shard: str) -> dict[str, str]:
        """Re-read one shard after a failed write; raises ShardVanishedError if it is gone."""
        name = self.configmap_name(shard)
        try:
            item = await self._kube.read_config_map(self.namespace, name)
        except ApiException as error:
            if error.status == NOT_FOUND:
                self.versions.pop(shard, None)
                raise ShardVanishedError(name) from error
            raise
        self.versions[shard] = item["metadata"]["resourceVersion"]
        return dict(item.get("data") or {})

    async def write(self, shard: str, data: Mapping[str, str]) -> bool:
        """Compare-and-swap one shard; False means someone else wrote first (re-read it)."""
        name = self.configmap_name(shard)
        known = self.versions.get(shard)
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": {
                names.LEDGER_NETWORK_LABEL: self.network,
                SHARD_LABEL: shard,
                names.LEDGER_COMPONENT_LABEL: names.LEDGER_COMPONENT,
                names.MANAGED_BY_LABEL: names.MANAGED_BY,
            },
        }
        if known is not None:
            metadata["resourceVersion"] = known
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}
        self._in_flight.add(shard)
        try:
            if known is None:
                written = await self._kube.create_config_map(self.namespace, body)
            else:
                written = await self._kube.replace_config_map(self.namespace, name, body)
        except ApiException as error:
            if error.status == CONFLICT:
                return False
            if error.status == NOT_FOUND:
                self.versions.pop(shard, None)
                raise ShardVanishedError(name) from error
            raise
        finally:
            self._in_flight.discard(shard)
        version = str(written["metadata"]["resourceVersion"])
        self.versions[shard] = version
        self._recent.setdefault(shard, deque(maxlen=RECENT_VERSIONS)).append(version)
        return True


def shard_of(config_map: dict[str, Any]) -> str | None:
    """The shard id a ledger ConfigMap says it holds (label), if it is a valid id."""
    labels = config_map["metadata"].get("labels") or {}
    shard = labels.get(SHARD_LABEL)
    if shard is None or parse_shard_id(shard) is None:
        return None
    return str(shard)
