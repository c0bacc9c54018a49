"""The agent loop: register, wait for the permanent address, configure, follow the mesh.

Everything is driven by the two informers (this network's MeshAgents and the
MeshNetwork itself): each change wakes the loop, which hands the changed members to the
peer planner (:mod:`reef.agent.peer_planner`: work per change independent of the mesh
size; nothing when nothing changed, e.g. on a health tick) and writes only the
difference to the device. Timers exist only as backstops: a periodic resync (re-resolve
endpoint names, re-apply against a device someone may have changed by hand), a health
check (handshake ages move without any API event) and the flush of a rate-limited
status write.

Lifecycle: SIGTERM leaves the interface up (traffic keeps flowing through an agent
upgrade; the next agent adopts it without recreating it). When the node's own
MeshAgent is being deleted, the interface is removed at once and the agent waits,
by watch, for a MeshAgent of its name to exist again; it never blocks the deletion
(the finalizer belongs to the operator). Restarting the agent registers it again.

This module is the state machine; the work is done by its collaborators:
:mod:`reef.agent.bootstrap` (key, backend, registration), :mod:`reef.agent.watches` (the
informers), :mod:`reef.agent.configure` (the device), :mod:`reef.agent.reporting` (status
and Events), :mod:`reef.agent.resolver` (endpoint names), :mod:`reef.agent.control`
(wake-ups, stop, exit codes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from reef.agent import bootstrap, ports, registration
from reef.agent.configure import DeviceConfigurator, me_body_ref
from reef.agent.control import LOGGER_NAME, RETRY_SECONDS, AgentExitError, Wakeup, elapsed
from reef.agent.device import Device
from reef.agent.peer_planner import PeerPlanner
from reef.agent.peers import PeerSetPlan
from reef.agent.reporting import Reporter
from reef.agent.resolver import DNS_TIMEOUT_SECONDS, Resolver
from reef.agent.status import StatusReporter
from reef.agent.watches import Watches
from reef.api.records import MeshAgent
from reef.dataplane import DataplaneError, Key
from reef.kube.client import Kube
from reef.kube.events import EventRecorder
from reef.observability import metrics
from reef.observability.events import EventType, Reason
from reef.settings import AgentSettings

if TYPE_CHECKING:
    from reef.agent.early import EarlyRegistration

__all__ = ["DNS_TIMEOUT_SECONDS", "RETRY_SECONDS", "Agent", "AgentExitError", "me_body_ref"]

Body = dict[str, Any]

log = logging.getLogger(LOGGER_NAME)


def wake_at(
    sync_started: float, resync: float, health: float, retry: float | None, due: float | None
) -> float:
    """When the agent loop wakes next (monotonic), unless an event wakes it sooner.

    A status write that was due before the sync began was that sync's to make. When it
    could not (its write failed and the loop backs off until ``retry``; no address yet),
    the past due time is not a reason to wake: the loop spun on it, hundreds of syncs a
    second, until the back-off ended (bench.agent_scale, 2026-12-08). The retry or the
    next health check comes back to it.
    """
    deadlines = [resync, health]
    if retry is not None:
        deadlines.append(retry)
    if due is not None and due >= sync_started:
        deadlines.append(due)
    return min(deadlines)


class Agent:
    def __init__(
        self, settings: AgentSettings, kube: Kube, early: EarlyRegistration | None = None
    ) -> None:
        self.settings = settings
        self._early_uid = None if early is None else early.uid
        self.kube = kube
        self.events = EventRecorder(kube, "agent")
        self.device = Device(settings.interface, None if early is None else early.wireguard_go)
        self.status = StatusReporter(kube, settings.node_name, settings.status_min_interval_seconds)
        self._wakeup = Wakeup()
        self._watches = Watches(kube, settings)
        self._started = time.monotonic()
        self._config = DeviceConfigurator(settings, self.device, self.events, self._started)
        self._reporter = Reporter(
            settings, self.events, self.status, self.device, self._watches.network
        )
        self._resolver = Resolver()
        self._planner = PeerPlanner()
        self._plan = PeerSetPlan()
        self._key: Key | None = None
        self._address_seen = False
        self._next_resync = 0.0
        self._next_health = 0.0
        self._retry_at: float | None = None

    # --- control ----------------------------------------------------------------------

    def request_stop(self) -> None:
        self._wakeup.request_stop()

    def readiness(self) -> tuple[bool, str]:
        """Ready = the interface is configured with the permanent address (the /readyz probe).

        Read from the probe server's thread: plain attribute reads, no locking needed.
        """
        config = self._config
        if config.error is not None:
            return False, f"configuring {self.settings.interface} failed: {config.error}"
        if config.configured and config.device_key is not None:
            addresses = ", ".join(map(str, config.device_key[1]))
            return True, f"{self.settings.interface} configured with {addresses}"
        if self._address_seen:
            return False, "address allocated; configuring the interface"
        return False, "waiting for the permanent address"

    # --- run --------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            self._key = await bootstrap.load_key(self.settings, self.kube, self.events)
            await bootstrap.open_backend_while(
                self.device, self.settings.backend, self._start_informers_and_register()
            )
            await self._loop()
        except AgentExitError as stop:
            return stop.code
        finally:
            self._watches.stop()
            await self.device.close()
        log.info("agent stopped; interface %s left as it is", self.settings.interface)
        return 0

    async def _start_informers_and_register(self) -> None:
        self._watches.start(asyncio.get_running_loop(), self._wakeup.changed)
        network = await bootstrap.await_network(self._watches, self._wakeup, self.settings.network)
        assert self._key is not None
        wanted = bootstrap.wanted_registration(self.settings, self._key, self._watches, network)
        await bootstrap.register(
            self.kube,
            self.events,
            watches=self._watches,
            wakeup=self._wakeup,
            wanted=wanted,
            started=self._started,
            early_uid=self._early_uid,
        )

    async def _loop(self) -> None:
        now = time.monotonic()
        self._next_resync = now + self.settings.resync_seconds
        self._next_health = now + self.settings.health_check_seconds
        while not self._wakeup.stopping:
            now = time.monotonic()
            force = now >= self._next_resync
            if force:
                self._next_resync = now + self.settings.resync_seconds
                self._resolver.clear()
            due = self.status.due_at
            check_health = force or now >= self._next_health or (due is not None and now >= due)
            if now >= self._next_health:
                self._next_health = now + self.settings.health_check_seconds
            try:
                await self._sync(force=force, check_health=check_health)
            except AgentExitError:
                raise
            except Exception:
                log.exception("sync failed; retrying in %.0fs", RETRY_SECONDS)
                self._retry_at = time.monotonic() + RETRY_SECONDS
            await self._wakeup.wait(
                wake_at(
                    now,
                    self._next_resync,
                    self._next_health,
                    self._retry_at,
                    self.status.due_at,
                )
            )

    # --- one sync ---------------------------------------------------------------------

    async def _sync(self, *, force: bool, check_health: bool = True) -> None:
        """Bring the device to the plan; report the status when ``check_health`` (a health
        tick, a resync, a coalesced write due) or when the configuration's state changed.

        A sync woken by a member's change does not read the device's handshakes: at 5000
        peers that read and check is O(N) (the whole device, every peer's liveness), and
        a join woke every agent for it twice. Its counts reach the status at the next
        health check, seconds later, and are coalesced for far longer anyway
        (reef.agent.status).
        """
        body = self._watches.own_body()
        network = self._watches.network()
        if body is None or body["metadata"].get("deletionTimestamp") is not None:
            await self._teardown("deleted" if body is None else "being deleted")
            return
        if network is None:
            return
        assert self._key is not None
        wanted = bootstrap.wanted_registration(self.settings, self._key, self._watches, network)
        if wanted.spec_patch(body):
            patched = await registration.reconcile_own(self.kube, wanted, body)
            if patched is None:
                return
            body = patched
        problem = bootstrap.endpoint(self.settings, self._watches.node(), network).problem
        await self._reporter.endpoint_problem(body, problem)
        me = self._watches.own(body)
        if not me.status.addresses:
            try:
                await self._config.prepare(network)
            except ports.PortInUseError as error:
                await self._exit_port_in_use(body, me, str(error))
            return
        if not self._config.configured and not self._address_seen:
            self._address_seen = True
            log.info(
                "permanent address %s allocated",
                ", ".join(me.status.addresses),
                extra={"phase": "address", "elapsed": elapsed(self._started)},
            )
        if self._retry_at is not None and time.monotonic() < self._retry_at and not force:
            return
        self._retry_at = None
        self._feed_planner()
        await self._resolver.resolve(self._planner.endpoint_hostnames())
        # The previous plan when nothing relevant changed (a health tick, our own report).
        plan = self._planner.plan(
            me,
            self._key.public_key(),
            network.spec,
            self._resolver.resolved,
            cluster_prefixes=network.cluster_networks,
        )
        self._plan = plan
        state = (self._config.configured, self._config.error)
        started = time.monotonic()
        try:
            await self._config.apply(self._key, me, network, plan, force=force)
            self._config.error = None
        except ports.PortInUseError as error:
            await self._exit_port_in_use(body, me, str(error))
        except (DataplaneError, OSError, ValueError) as error:
            self._config.failed(error)
            self._retry_at = time.monotonic() + RETRY_SECONDS
        metrics.AGENT_SYNC_DURATION.observe(time.monotonic() - started)
        await self._reporter.skips(body, plan.skipped)
        await self._reporter.refused_routes(body, plan.refused_routes)
        if check_health or state != (self._config.configured, self._config.error):
            await self._reporter.status(body, me, plan, self._config)

    async def _exit_port_in_use(self, body: Body, me: MeshAgent, message: str) -> None:
        """Say it everywhere an admin looks (condition, Event, log, termination message), exit."""
        self._config.port_in_use(message)
        log.error("%s", message)
        ports.write_termination_message(message)
        await self._reporter.status(body, me, self._plan, self._config, flush=True)
        await self.events.record(body, EventType.WARNING, Reason.PORT_IN_USE, message)
        raise AgentExitError(5, message)

    def _feed_planner(self) -> None:
        """Hand the planner the members changed since the last sync (all after a list)."""
        agents = self._watches.agents
        assert agents is not None
        changes = agents.take_changes()
        if changes is None:
            self._planner.set_members(agents.objects)
            return
        for name in changes:
            self._planner.set_member(name, agents.objects.get(name))

    async def _teardown(self, why: str) -> None:
        if not await self._config.remove():
            return
        self._address_seen = False
        self._reporter.forget()
        log.info(
            "our MeshAgent is %s: removed %s; waiting for a MeshAgent %s to exist again",
            why,
            self.settings.interface,
            self.settings.node_name,
        )
