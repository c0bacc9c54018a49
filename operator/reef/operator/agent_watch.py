"""The operator's watch of every MeshAgent, without kopf.

kopf's event handlers cost the operator, per event, a deep copy of the object and its
per-object machinery (a queue and a worker per object); in a burst of 5000 new members
that was more than a third of its CPU, and after a restart it held a worker for each of
the 5000 objects listed at once (docs/benchmarks.md). Most events are the echo of a
status write: a member already holding its address, whose health report the network's
status counts. Those are reduced on the watch's thread to a :class:`MemberState` of four
fields; only a member that needs the operator (no address yet, or being deleted) reaches
the loop as an object, and is reconciled.

One reconcile per object at a time: an event for an object whose reconcile is running
waits, the newest one only, and runs once that reconcile ends (kopf did the same with
its per-object queue). An event that shows the object settled meanwhile drops the wait.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from reef.api import names
from reef.kube.listwatch import Body, ListWatch, without_managed_fields
from reef.operator.context import OperatorContext
from reef.operator.network_deletion import continue_deletion, is_deleting
from reef.operator.reachability import MemberReport, report_of
from reef.operator.reconcile_agent import read_agent, reconcile_agent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MemberState:
    """What the operator keeps of a member that holds its address."""

    network: str
    uid: str
    ready: bool
    report: MemberReport


def settled(body: Body) -> bool:
    """Already allocated and not being deleted: nothing for the operator to do."""
    status = body.get("status") or {}
    return bool(status.get("addresses")) and not body["metadata"].get("deletionTimestamp")


def member_state(body: Body) -> MemberState:
    conditions = (body.get("status") or {}).get("conditions") or []
    return MemberState(
        network=str((body.get("spec") or {}).get("network") or "default"),
        uid=str(body["metadata"]["uid"]),
        ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        report=report_of(body),
    )


class AgentWatch(ListWatch):
    """Every MeshAgent, listed and then watched; events handed to :class:`AgentEvents`."""

    def __init__(self, context: OperatorContext, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(context.kube, names.MESH_AGENT_PLURAL)
        self.events = AgentEvents(context)
        self._loop = loop
        self._seen: set[str] = set()
        #: What this thread read since it last woke the loop: (settled member) or
        #: (kind, object), handed over together (one wake-up of the loop per read).
        self._batch: list[MemberState | tuple[str, Body]] = []

    def _list_started(self) -> None:
        self._seen = set()

    def _listed(self, item: Body) -> None:
        self._seen.add(str(item["metadata"]["uid"]))
        self._hand_over("ADDED", item)

    def _list_finished(self) -> None:
        seen, self._seen = self._seen, set()
        self._handed_over()
        self._loop.call_soon_threadsafe(self.events.listed, seen)

    def _hand_over(self, kind: str, body: Body) -> None:
        if kind != "DELETED" and settled(body):
            self._batch.append(member_state(body))
        else:
            self._batch.append((kind, without_managed_fields(body)))

    def _handed_over(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._loop.call_soon_threadsafe(self.events.deliver, batch)


class AgentEvents:
    """The loop's side of the MeshAgent watch."""

    def __init__(self, context: OperatorContext) -> None:
        self._context = context
        #: uid -> the newest object that arrived while its reconcile was running.
        self._waiting: dict[str, Body] = {}
        self._running: set[str] = set()
        #: Reconciles started from events and not yet finished (for a clean stop).
        self._tasks: set[asyncio.Task[None]] = set()

    def deliver(self, batch: list[MemberState | tuple[str, Body]]) -> None:
        """What the watch read in one piece, in its order."""
        for item in batch:
            if isinstance(item, MemberState):
                self.settled(item)
            else:
                self.changed(*item)

    def settled(self, member: MemberState) -> None:
        self._waiting.pop(member.uid, None)
        self._context.note_member(member.network, member.uid, member.ready, member.report)

    def listed(self, uids: set[str]) -> None:
        """A list is complete: forget members that went while no watch was open."""
        self._context.forget_absent(uids)

    def changed(self, kind: str, body: Body) -> None:
        uid = str(body["metadata"]["uid"])
        if kind == "DELETED":
            self._waiting.pop(uid, None)
            handle = self._context.forget_agent(body)
            if handle is not None and is_deleting(handle.body):
                # One member fewer: maybe the network's deletion can finish now.
                name = handle.network.metadata.name
                self._context.spawn(
                    continue_deletion(self._context, name), f"reef-delete-network-{name}"
                )
            return
        if uid in self._running:
            self._waiting[uid] = body
            return
        self._running.add(uid)
        task = asyncio.create_task(self._reconcile(uid, body), name=f"reef-agent-{uid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile(self, uid: str, body: Body | None) -> None:
        try:
            while body is not None:
                agent = read_agent(body)
                if agent is not None:
                    try:
                        await reconcile_agent(self._context, agent, body)
                    except Exception:
                        # The next event, the cool-down retry or the repair pass tries
                        # again; one failure must not end the watch's handling.
                        log.exception("reconcile of MeshAgent %s failed", agent.name)
                body = self._waiting.pop(uid, None)
        finally:
            self._running.discard(uid)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
