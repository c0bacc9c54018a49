"""kopf handlers: thin glue from watch events to the operator's modules.

Only event handlers are used, deliberately: kopf's change handlers would store progress
and a diff-base in every object they handle (extra writes per object). Our own state
lives in the ledger and in ``status``; the reconcile is idempotent, so re-delivered
events are harmless. MeshAgents, thousands of them, and the ledger's ConfigMaps, large,
are watched without kopf (reef.operator.agent_watch, reef.operator.ledger_watch),
started here once everything they need is in place.
"""

import asyncio
import logging
from typing import Any

import kopf

from reef.api import names
from reef.api.models import plain
from reef.kube.client import Kube, load_api_client
from reef.operator.agent_watch import AgentWatch
from reef.operator.cluster_ranges import ClusterRanges
from reef.operator.context import OperatorContext
from reef.operator.ledger_watch import LedgerWatch
from reef.operator.login import connection_info
from reef.operator.network_deletion import continue_deletion, ensure_finalizer, is_deleting
from reef.operator.preflight import check_pools
from reef.operator.reconcile_agent import retry_unsettled
from reef.operator.repair import RepairScheduler
from reef.settings import OperatorSettings

log = logging.getLogger(__name__)

SETTINGS = OperatorSettings.from_environment()


def _context(memo: Any) -> OperatorContext:
    context: OperatorContext = memo.reef
    return context


@kopf.on.startup()
async def handle_startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.posting.enabled = False  # Events come from our own catalogue only
    settings.batching.batch_window = 0.01  # react within ~10 ms of a watch event
    settings.watching.server_timeout = 300
    kube = Kube(load_api_client(SETTINGS, SETTINGS.api_workers), SETTINGS.api_workers)
    context = OperatorContext(SETTINGS, kube)
    # Know every network before the first MeshAgent event is handled.
    for body in await kube.list_networks():
        await context.upsert_network(body)
    context.spawn(check_pools(context), "reef-preflight")
    context.repairs = RepairScheduler(context)
    context.cluster_ranges = ClusterRanges(
        kube, lambda: {name: handle.body for name, handle in context.networks.items()}
    )
    await context.cluster_ranges.seed()
    context.spawn(context.cluster_ranges.run(), "reef-cluster-ranges")
    # Not a kopf timer: kopf would put its finalizer on every MeshNetwork for it.
    context.spawn(context.repairs.tick(SETTINGS.repair_interval_seconds), "reef-repair-ticker")
    memo.reef = context
    loop = asyncio.get_running_loop()
    memo.ledger_watch = LedgerWatch(context, loop)
    memo.ledger_watch.start()
    memo.agent_watch = AgentWatch(context, loop)
    memo.agent_watch.start()
    log.info("reef operator started; networks: %s", sorted(context.networks))


@kopf.on.cleanup()
async def handle_cleanup(memo: Any, **_: Any) -> None:
    context = _context(memo)
    agent_watch: AgentWatch = memo.agent_watch
    agent_watch.stop()
    ledger_watch: LedgerWatch = memo.ledger_watch
    ledger_watch.stop()
    await agent_watch.events.stop()
    context.repairs.stopped.set()
    for name in list(context.networks):
        await context.remove_network(name)
    context.kube.close()


@kopf.on.login()
def handle_login(**_: Any) -> kopf.ConnectionInfo:
    """Log in with the same credentials as our client (kubeconfig or in-cluster)."""
    return connection_info(load_api_client(SETTINGS, 1).configuration)


@kopf.on.event(names.GROUP, names.VERSION, names.MESH_NETWORK_PLURAL)
async def handle_event_meshnetwork(
    event: kopf.RawEvent, body: kopf.Body, name: str, memo: Any, **_: Any
) -> None:
    context = _context(memo)
    if event["type"] == "DELETED":
        await context.remove_network(name)
        return
    network = plain(body)
    if is_deleting(network):
        if name in context.networks:
            await context.upsert_network(network)
        context.spawn(continue_deletion(context, name), f"reef-delete-network-{name}")
        return
    await ensure_finalizer(context, network)
    before = context.networks.get(name)
    pools = before.network.spec.cidrs if before is not None else None
    handle, created = await context.upsert_network(network)
    context.cluster_ranges.touch()  # a new network, or someone edited its clusterPrefixes
    if handle is not None and handle.network.spec.cidrs != pools:
        context.spawn(check_pools(context), f"reef-preflight-{name}")
    if handle is not None and created:
        # MeshAgents may have waited for this network: give them addresses now.
        context.spawn(retry_unsettled(context, name), f"reef-new-network-{name}")
        context.repairs.request(name)


@kopf.on.event("", "v1", "nodes")
async def handle_event_node(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Pod CIDRs of the cluster: never routed by a member (reef.operator.cluster_ranges)."""
    _context(memo).cluster_ranges.node_event(event["type"], body)


@kopf.on.event("networking.k8s.io", "v1", "servicecidrs")
async def handle_event_servicecidr(
    event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any
) -> None:
    """The service ranges of the cluster: never routed by a member."""
    _context(memo).cluster_ranges.service_cidr_event(event["type"], body)
