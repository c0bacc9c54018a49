"""Pool preflight: a MeshNetwork whose pool overlaps a range in use is flagged.

Checked when a MeshNetwork appears or its pools change (and at operator start-up):
one LIST each of Nodes (pod CIDRs, InternalIP/ExternalIP), ServiceCIDR objects (the
Service range) and MeshNetworks, all from the API server's watch cache — a rare read,
never per allocation. A collision sets the MeshNetwork's ``Ready`` to False (reason
``PoolOverlaps``) naming each colliding range and its owner, with one ``PoolOverlap``
Event per new collision. The pool keeps allocating (members already hold addresses;
refusing them would not free the range) — the admin decides. What an admission check
can see (the Service range, Nodes) the chart's ValidatingAdmissionPolicy refuses
before the object exists; a MeshNetwork cannot see its siblings in CEL, and Nodes
change after the pool was admitted — hence this check as well.
"""

from __future__ import annotations

import logging
from typing import Any

from reef.ipam.overlap import (
    UsedRange,
    find_overlaps,
    ranges_of_networks,
    ranges_of_nodes,
    ranges_of_service_cidrs,
)
from reef.kube.writes import NOT_FOUND, ApiException
from reef.observability.events import EventType, Reason
from reef.operator.context import OperatorContext

log = logging.getLogger(__name__)

_EVENTS = 5


async def _used_ranges(context: OperatorContext) -> tuple[list[UsedRange], list[dict[str, Any]]]:
    used: list[UsedRange] = []
    try:
        used += ranges_of_nodes(await context.kube.list_nodes())
    except ApiException as error:
        log.warning("pool preflight: cannot list Nodes (%s); node ranges not checked", error)
    try:
        used += ranges_of_service_cidrs(await context.kube.list_service_cidrs())
    except ApiException as error:
        if error.status != NOT_FOUND:
            log.warning("pool preflight: cannot list ServiceCIDRs (%s)", error)
    networks = await context.kube.list_networks()
    return used, networks


async def check_pools(context: OperatorContext) -> None:
    """Compare every known network's pools with the ranges in use; report what changed."""
    used, networks = await _used_ranges(context)
    for name, handle in list(context.networks.items()):
        ranges = used + ranges_of_networks(networks, but=name)
        sentences = [o.sentence() for o in find_overlaps(handle.network.spec.cidrs, ranges)]
        if sentences == handle.status.overlaps:
            continue
        for sentence in [s for s in sentences if s not in handle.status.overlaps][:_EVENTS]:
            await context.recorder.record(
                handle.body,
                EventType.WARNING,
                Reason.POOL_OVERLAP,
                f"{sentence}: traffic to it would be routed into the mesh",
            )
        handle.status.overlaps = sentences
        handle.status.touch()
