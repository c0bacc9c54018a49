"""The operator's watch of its ledger ConfigMaps, metadata only, without kopf.

The operator writes every shard itself; what it must notice is a change it did not make
(someone edited or deleted a shard) and then repair that network. A shard holds up to
1024 entries (~120 KB): receiving each of our own writes back whole, parsed and
deep-copied by kopf, was the largest part of the operator's remaining CPU in a burst of
5000 allocations (docs/benchmarks.md, issue 10). Names, labels and resourceVersions are
all this needs, so the API server sends ``PartialObjectMetadata`` instead.
"""

from __future__ import annotations

import asyncio
import logging

from reef.api import names
from reef.kube.listwatch import Body, ListWatch
from reef.operator.context import OperatorContext

log = logging.getLogger(__name__)

SELECTOR = f"{names.LEDGER_COMPONENT_LABEL}={names.LEDGER_COMPONENT}"


class LedgerWatch(ListWatch):
    def __init__(self, context: OperatorContext, loop: asyncio.AbstractEventLoop) -> None:
        namespace = context.settings.namespace
        super().__init__(
            context.kube,
            "configmaps",
            path=f"/api/v1/namespaces/{namespace}/configmaps",
            label_selector=SELECTOR,
            metadata_only=True,
        )
        self._context = context
        self._loop = loop
        self._lists = 0

    def _list_finished(self) -> None:
        self._lists += 1
        if self._lists > 1:
            # Listed again after the watch broke: what changed in between is unknown.
            self._loop.call_soon_threadsafe(self._relisted)

    def _hand_over(self, kind: str, body: Body) -> None:
        metadata = body["metadata"]
        labels = metadata.get("labels") or {}
        self._loop.call_soon_threadsafe(
            self._changed,
            kind,
            str(labels.get(names.LEDGER_NETWORK_LABEL) or ""),
            str(labels.get(f"{names.GROUP}/shard") or ""),
            str(metadata.get("resourceVersion") or ""),
        )

    def _changed(self, kind: str, network: str, shard: str, version: str) -> None:
        """A shard changed or vanished and it was not us: repair that network."""
        handle = self._context.networks.get(network)
        if handle is None:
            return
        if kind == "DELETED" or not handle.allocator.store.is_own_write(shard, version):
            log.info("ledger shard %s of %s changed by someone else (%s)", shard, network, kind)
            self._context.repairs.request(network)

    def _relisted(self) -> None:
        for network in self._context.networks:
            self._context.repairs.request(network)
