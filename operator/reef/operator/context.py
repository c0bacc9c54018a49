"""Everything the operator's handlers share, built once at start-up.

The registry holds one NetworkAllocator (and one status writer) per MeshNetwork; it is
filled from a LIST before any watch starts, so no MeshAgent is ever judged against a
network the operator simply has not seen yet.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from reef.api.models import MeshNetwork, parse_mesh_network
from reef.ipam import Problem
from reef.kube.client import Kube
from reef.kube.events import EventRecorder
from reef.observability.events import EventType, Reason
from reef.operator.cluster_ranges import ClusterRanges
from reef.operator.cooldown_retry import CooldownRetries
from reef.operator.ledger_store import LedgerStore
from reef.operator.network_allocator import NetworkAllocator, ReloadReport
from reef.operator.network_status import NetworkStatusWriter
from reef.operator.reachability import MemberReport, Reachability, reachability
from reef.settings import OperatorSettings

if TYPE_CHECKING:  # repair imports this module; the scheduler is only named here
    from reef.operator.repair import RepairScheduler

log = logging.getLogger(__name__)

#: Events listing individual unreadable ledger entries, before one summary Event.
MAX_PROBLEM_EVENTS = 5


def unreadable_entry_message(store: LedgerStore, problem: Problem) -> str:
    """The Event text for one ledger entry that cannot be trusted, naming its ConfigMap."""
    return (
        f"ledger shard {problem.shard}, key {problem.key!r}: {problem.message}. The address"
        " stays out of the pool; fix or delete the key in ConfigMap"
        f" {store.namespace}/{store.configmap_name(problem.shard)}."
    )


@dataclass
class NetworkHandle:
    network: MeshNetwork
    body: dict[str, Any]
    allocator: NetworkAllocator
    status: NetworkStatusWriter
    #: uid -> Ready condition of the network's MeshAgents, kept from their watch events.
    ready: dict[str, bool] = field(default_factory=dict)
    #: uid -> what the member's agent says about its peers (see reef.operator.reachability).
    reports: dict[str, MemberReport] = field(default_factory=dict)
    #: Pending retries after release cool-downs (see reef.operator.cooldown_retry).
    retries: CooldownRetries = field(default_factory=CooldownRetries)


class OperatorContext:
    def __init__(self, settings: OperatorSettings, kube: Kube) -> None:
        self.settings = settings
        self.kube = kube
        self.recorder = EventRecorder(kube, "reef-operator")
        self.networks: dict[str, NetworkHandle] = {}
        self.background: set[asyncio.Task[Any]] = set()
        #: uids of MeshAgents being reconciled right now (see reconcile_agent).
        self.reconciling: set[str] = set()
        # Both are set at start-up (reef.operator.handlers): they need the running
        # loop and, for the scheduler, this context. Until then the attributes do not
        # exist, so a use before start-up fails loudly rather than on None.
        self.repairs: RepairScheduler
        self.cluster_ranges: ClusterRanges

    def spawn(self, coroutine: Any, name: str) -> None:
        """Run a coroutine in the background, keeping a reference until it finishes."""
        task = asyncio.create_task(coroutine, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def upsert_network(self, body: dict[str, Any]) -> tuple[NetworkHandle | None, bool]:
        """Track a MeshNetwork; returns its handle (None if unreadable) and whether it is new."""
        try:
            network = parse_mesh_network(body)
        except (ValidationError, ValueError) as error:
            log.error("MeshNetwork %s is unreadable: %s", body["metadata"]["name"], error)
            return None, False
        name = network.metadata.name
        handle = self.networks.get(name)
        if handle is not None:
            handle.network, handle.body = network, body
            handle.allocator.update_spec(network.spec)
            handle.status.update_body(body)
            return handle, False

        async def on_reload(report: ReloadReport) -> None:
            await self._report_reload(name, report)

        allocator = NetworkAllocator(
            self.kube, self.settings.namespace, name, network.spec, on_reload
        )
        allocator.start()
        status = NetworkStatusWriter(
            self.kube, self.recorder, allocator, body, self._ready_count, reach=self._reachability
        )
        handle = NetworkHandle(network, body, allocator, status)
        self.networks[name] = handle
        return handle, True

    async def remove_network(self, name: str) -> None:
        handle = self.networks.pop(name, None)
        if handle is not None:
            await handle.allocator.stop()
            await handle.status.stop()

    def note_member(self, network: str, uid: str, ready: bool, report: MemberReport) -> None:
        """Track an allocated member's Ready condition and health report (for the
        MeshNetwork's agentsReady and MembersReachable); the status is written only when
        either changed."""
        handle = self.networks.get(network)
        if handle is None:
            return
        if handle.ready.get(uid) != ready or handle.reports.get(uid) != report:
            handle.ready[uid] = ready
            handle.reports[uid] = report
            handle.status.touch()

    def forget_absent(self, present: set[str]) -> None:
        """Drop what we kept of members whose uid is not in ``present`` (a complete list
        of every MeshAgent): those deleted while no watch was open."""
        for handle in self.networks.values():
            gone = [
                uid for uid in handle.ready.keys() | handle.reports.keys() if uid not in present
            ]
            for uid in gone:
                handle.ready.pop(uid, None)
                handle.reports.pop(uid, None)
            if gone:
                handle.status.touch()

    def forget_agent(self, body: Any) -> NetworkHandle | None:
        """A MeshAgent is gone: drop what we kept of it; returns its network's handle."""
        handle = self.networks.get((body.get("spec") or {}).get("network", "default"))
        if handle is not None:
            uid = body["metadata"]["uid"]
            handle.ready.pop(uid, None)
            handle.reports.pop(uid, None)
            handle.status.touch()
        return handle

    def _reachability(self, network: str) -> Reachability:
        handle = self.networks.get(network)
        return reachability(() if handle is None else handle.reports.values())

    def _ready_count(self, network: str) -> int:
        handle = self.networks.get(network)
        return 0 if handle is None else sum(handle.ready.values())

    async def _report_reload(self, network: str, report: ReloadReport) -> None:
        handle = self.networks.get(network)
        if handle is None:
            return
        for problem in report.problems[:MAX_PROBLEM_EVENTS]:
            await self.recorder.record(
                handle.body,
                EventType.WARNING,
                Reason.LEDGER_ENTRY_UNREADABLE,
                unreadable_entry_message(handle.allocator.store, problem),
            )
        if len(report.problems) > MAX_PROBLEM_EVENTS:
            await self.recorder.record(
                handle.body,
                EventType.WARNING,
                Reason.LEDGER_ENTRY_UNREADABLE,
                f"{len(report.problems)} unreadable ledger entries in all; see the"
                " MeshNetwork's Ready condition",
            )
        if report.plan.recreate:
            restored = ", ".join(
                f"{claim.address} ({claim.name})" for claim in report.plan.recreate[:20]
            )
            await self.recorder.record(
                handle.body,
                EventType.WARNING,
                Reason.LEDGER_ENTRY_RESTORED,
                f"{len(report.plan.recreate)} ledger entries were missing and were rebuilt"
                f" from MeshAgent statuses: {restored}",
            )
        handle.status.touch()
