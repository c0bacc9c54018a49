"""What the agent tells the cluster after a sync: the status, and Events once per news.

An Event goes out once per new problem (a peer left out, refused extraAllowedIPs, a bad
endpoint annotation on the Node), not on every sync; the status goes through the rate
limit of :class:`reef.agent.status.StatusReporter`.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

from reef.agent.configure import DeviceConfigurator
from reef.agent.control import LOGGER_NAME
from reef.agent.device import Device
from reef.agent.health import ALLOCATED, LivenessTracker, Observation
from reef.agent.peers import PeerSetPlan, SkippedPeer
from reef.agent.status import StatusReporter
from reef.api.records import MeshAgent, MeshNetwork
from reef.kube.events import EventRecorder
from reef.observability import metrics
from reef.observability.events import EventType, Reason
from reef.settings import AgentSettings

Body = dict[str, Any]

log = logging.getLogger(LOGGER_NAME)


class Reporter:
    def __init__(
        self,
        settings: AgentSettings,
        events: EventRecorder,
        status: StatusReporter,
        device: Device,
        network: Callable[[], MeshNetwork | None],
    ) -> None:
        self._settings = settings
        self._events = events
        self._status = status
        self._device = device
        self._network = network
        self._handshake_ages = metrics.OldestHandshakes(
            metrics.AGENT_HANDSHAKE_AGE, metrics.AGENT_HANDSHAKE_AGE_MAX
        )
        self._reported_skips: dict[str, str] = {}
        self._reported_refusals: tuple[str, ...] = ()
        self._endpoint_problem: str | None = None
        self._liveness = LivenessTracker()

    def forget(self) -> None:
        """The interface was removed: report its skips and refusals again when it returns."""
        self._reported_skips.clear()
        self._reported_refusals = ()

    async def endpoint_problem(self, body: Body, problem: str | None) -> None:
        """One Event per new problem with the Node's endpoint annotations."""
        if problem is not None and problem != self._endpoint_problem:
            log.warning("Node %s: %s", self._settings.node_name, problem)
            await self._events.record(
                body, EventType.WARNING, Reason.ENDPOINT_OVERRIDE_INVALID, problem
            )
        self._endpoint_problem = problem

    async def skips(self, body: Body, skipped: tuple[SkippedPeer, ...]) -> None:
        current = {s.name: s.reason for s in skipped}
        for name, reason in current.items():
            if self._reported_skips.get(name) != reason:
                await self._events.record(
                    body,
                    EventType.WARNING,
                    Reason.PEER_SKIPPED,
                    f"peer {name} left out of {self._settings.interface}: {reason};"
                    " the rest of the mesh stays configured",
                )
        self._reported_skips = current

    async def refused_routes(self, body: Body, refused: tuple[str, ...]) -> None:
        """One Event on our own MeshAgent when the set of refused prefixes changes (every
        node drops them; only the member's own agent says so, not all 5000)."""
        if refused and refused != self._reported_refusals:
            await self._events.record(
                body,
                EventType.WARNING,
                Reason.ROUTE_REFUSED,
                "extraAllowedIPs not routed by any member: "
                + "; ".join(refused)
                + ". A cluster admin adds the prefix to the MeshNetwork's routablePrefixes"
                " (never the pool or the cluster's service/pod ranges) or removes it here",
            )
        self._reported_refusals = refused

    async def status(
        self,
        body: Body,
        me: MeshAgent,
        plan: PeerSetPlan,
        config: DeviceConfigurator,
        *,
        flush: bool = False,
    ) -> None:
        total = healthy = 0
        unhealthy: tuple[str, ...] = ()
        joining: tuple[str, ...] = ()
        if config.configured:
            # Every health tick comes here with N peers: one cheap device read and one
            # pass (health.LivenessTracker); only the few oldest ages reach the metrics.
            live = await self._device.read_liveness()
            network = self._network()
            check = self._liveness.check(
                live,
                plan.names,
                time.time(),
                time.monotonic(),
                network.spec.persistent_keepalive if network is not None else 0,
            )
            healthy, unhealthy, joining = check.healthy, check.unhealthy, check.joining
            total = len(plan.names)
            self._handshake_ages.update(check.oldest)
        metrics.AGENT_PEERS.set(total)
        metrics.AGENT_PEERS_HEALTHY.set(healthy)
        allocated_condition = me.condition(ALLOCATED)
        choice = self._device.choice
        assert choice is not None
        observation = Observation(
            backend=choice.kind,
            backend_reason=choice.reason,
            interface=self._settings.interface,
            configured_addresses=tuple(
                f"{a}/{ipaddress.ip_address(a).max_prefixlen}" for a in me.status.addresses
            )
            if config.configured
            else (),
            listen_port=config.listen_port,
            allocated=bool(me.status.addresses)
            and (allocated_condition is None or allocated_condition.status == "True"),
            configured=config.configured,
            configure_error=config.error,
            configure_reason=config.error_reason,
            total=total,
            healthy=healthy,
            unhealthy=unhealthy,
            joining=joining,
            skipped=plan.skipped,
            self_problem=plan.self_problem,
            refused_routes=plan.refused_routes,
        )
        await self._status.report(body, observation, now=flush)
