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
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

from reef.agent import ports, registration
from reef.agent.device import WIREGUARD_OVERHEAD, Device
from reef.agent.endpoint import EndpointChoice, choose_endpoint
from reef.agent.health import ALLOCATED, Observation, RxTracker, peer_health
from reef.agent.informer import Informer
from reef.agent.keys import KeyFileError, load_or_create_key
from reef.agent.peer_planner import PeerPlanner
from reef.agent.peers import PeerSetPlan, SkippedPeer
from reef.agent.status import StatusReporter
from reef.api import names
from reef.api.models import MeshAgent, MeshNetwork, parse_mesh_agent, parse_mesh_network
from reef.dataplane import DataplaneError, DeviceSpec, Key, PeerSpec
from reef.dataplane.spec import IPAddress
from reef.kube.client import Kube
from reef.kube.events import EventRecorder
from reef.observability import metrics
from reef.observability.events import EventType, Reason
from reef.settings import AgentSettings

log = logging.getLogger(__name__)

Body = dict[str, Any]
DNS_TIMEOUT_SECONDS = 5.0
#: Back-off before retrying a failed device configuration (an error, not an event wait).
RETRY_SECONDS = 2.0


class AgentExitError(Exception):
    """Stop the agent with this exit code; the message was already reported."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _peer_relevant(body: Body) -> tuple[Any, ...]:
    """What of a MeshAgent can change this node's device or its own report.

    Members write their health (status.dataplane, Configured/PeersHealthy/Ready) often;
    at thousands of members those writes must cost this agent nothing: they update the
    cache but do not wake the loop. Spec, addresses, the Allocated condition, deletion
    and identity do wake it. (The health timer still runs on its own schedule.)
    """
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    allocated = [c for c in status.get("conditions") or [] if c.get("type") == ALLOCATED]
    return (
        metadata.get("uid"),
        metadata.get("generation"),
        metadata.get("deletionTimestamp"),
        tuple(metadata.get("finalizers") or ()),
        json.dumps(body.get("spec"), sort_keys=True),
        tuple(status.get("addresses") or ()),
        json.dumps(allocated, sort_keys=True),
    )


class Agent:
    def __init__(self, settings: AgentSettings, kube: Kube) -> None:
        self.settings = settings
        self.kube = kube
        self.events = EventRecorder(kube, "agent")
        self.device = Device(settings.interface)
        self.status = StatusReporter(kube, settings.node_name, settings.status_min_interval_seconds)
        self._wake = asyncio.Event()
        self._stopping = False
        self._key: Key | None = None
        self._configured = False
        self._address_seen = False
        self._device_key: tuple[Any, ...] | None = None
        self._applied_peers: tuple[PeerSpec, ...] | None = None
        self._plan = PeerSetPlan()
        self._planner = PeerPlanner()
        self._handshake_ages = metrics.OldestHandshakes(
            metrics.AGENT_HANDSHAKE_AGE, metrics.AGENT_HANDSHAKE_AGE_MAX
        )
        self._configure_error: str | None = None
        self._configure_reason = "ConfigurationFailed"
        self._reported_skips: dict[str, str] = {}
        self._reported_refusals: tuple[str, ...] = ()
        self._resolved: dict[str, IPAddress | None] = {}
        self._next_resync = 0.0
        self._next_health = 0.0
        self._retry_at: float | None = None
        self._mtu_default: int | None = None
        self._prepared_port: int | None = None
        self._started = time.monotonic()
        self._agents: Informer | None = None
        self._networks: Informer | None = None
        self._network_body: Body | None = None
        self._network_parsed: MeshNetwork | None = None
        self._nodes: Informer | None = None
        self._endpoint_problem: str | None = None
        self._rx = RxTracker()

    # --- control ----------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _changed(self) -> None:
        self._wake.set()

    def readiness(self) -> tuple[bool, str]:
        """Ready = the interface is configured with the permanent address (the /readyz probe).

        Read from the probe server's thread: plain attribute reads, no locking needed.
        """
        if self._configure_error is not None:
            return False, f"configuring {self.settings.interface} failed: {self._configure_error}"
        if self._configured and self._device_key is not None:
            addresses = ", ".join(map(str, self._device_key[1]))
            return True, f"{self.settings.interface} configured with {addresses}"
        if self._address_seen:
            return False, "address allocated; configuring the interface"
        return False, "waiting for the permanent address"

    async def _wait(self, deadline: float | None) -> None:
        """Until an informer reports a change, a stop is asked, or ``deadline`` (monotonic)."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    # --- objects ----------------------------------------------------------------------

    def _own_body(self) -> Body | None:
        assert self._agents is not None
        return self._agents.objects.get(self.settings.node_name)

    def _network(self) -> MeshNetwork | None:
        assert self._networks is not None
        body = self._networks.objects.get(self.settings.network)
        if body is None:
            return None
        # Parsed once per version of the object (the informer stores a new dict for each):
        # validating it on every health tick was a quarter of the idle agent's CPU.
        if body is not self._network_body:
            self._network_parsed = parse_mesh_network(body)
            self._network_body = body
        return self._network_parsed

    async def _own_ref(self) -> Body:
        """Our MeshAgent for an Event, read directly (the informers may not run yet)."""
        try:
            body: Body = await self.kube.get_agent(self.settings.node_name)
        except Exception:
            return {"kind": names.MESH_AGENT_KIND, "metadata": {"name": self.settings.node_name}}
        return body

    # --- run --------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            await self._start()
            await self._loop()
        except AgentExitError as stop:
            return stop.code
        finally:
            for informer in (self._agents, self._networks, self._nodes):
                if informer is not None:
                    informer.stop()
            await self.device.close()
        log.info("agent stopped; interface %s left as it is", self.settings.interface)
        return 0

    async def _start(self) -> None:
        settings = self.settings
        try:
            self._key, created = load_or_create_key(settings.key_dir, settings.network)
        except (KeyFileError, OSError) as error:
            await self.events.record(
                await self._own_ref(), EventType.WARNING, Reason.KEY_ERROR, str(error)
            )
            log.error("cannot use the private key: %s", error)
            raise AgentExitError(2, str(error)) from error
        log.info(
            "private key %s (public key %s)",
            "created" if created else "loaded",
            self._key.public_key().base64(),
        )
        # The backend (pyroute2's import, the kernel probe) opens on the device's thread
        # while the informers list and the MeshAgent is registered: registration needs
        # only the key, and the operator allocates while the backend is still opening.
        # A node without any WireGuard still exits (3) at once, not after the MeshNetwork
        # appears: whichever of the two ends first is looked at first.
        opening = asyncio.ensure_future(
            self.device.open(None if settings.backend == "auto" else settings.backend)
        )
        registering = asyncio.ensure_future(self._start_informers_and_register())
        try:
            await asyncio.wait([opening, registering], return_when=asyncio.FIRST_COMPLETED)
            if not (opening.done() and opening.exception() is not None):
                await registering
        finally:
            registering.cancel()
            await asyncio.wait([opening, registering])
        try:
            choice = opening.result()
        except DataplaneError as error:
            log.error("no WireGuard backend: %s", error)
            raise AgentExitError(3, str(error)) from error
        metrics.AGENT_BACKEND.labels(choice.kind).set(1)
        log.info("backend %s: %s", choice.kind, choice.reason)

    async def _start_informers_and_register(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        self._networks = Informer(
            self.kube,
            names.MESH_NETWORK_PLURAL,
            f"metadata.name={settings.network}",
            loop,
            self._changed,
            # the operator's status writes (usage, reachability) change nothing here
            relevant=lambda body: json.dumps(body.get("spec"), sort_keys=True),
        )
        self._agents = Informer(
            self.kube,
            names.MESH_AGENT_PLURAL,
            f"spec.network={settings.network}",
            loop,
            self._changed,
            relevant=_peer_relevant,
        )
        # Our own Node (one object, like the kubelet's own watch): its uid makes it the
        # MeshAgent's owner; its annotations and addresses give the endpoint.
        self._nodes = Informer(
            self.kube,
            "nodes",
            f"metadata.name={settings.node_name}",
            loop,
            self._changed,
            optional=True,
        )
        self._networks.start()
        self._agents.start()
        self._nodes.start()
        network = await self._await_network()
        await self._register(network)

    async def _await_network(self) -> MeshNetwork:
        logged = False
        while not self._stopping:
            assert self._networks is not None
            assert self._agents is not None
            assert self._nodes is not None
            if (
                self._networks.synced.is_set()
                and self._agents.synced.is_set()
                and self._nodes.synced.is_set()
            ):
                network = self._network()
                if network is not None:
                    return network
                if not logged:
                    log.warning(
                        "MeshNetwork %s does not exist yet; waiting for it", self.settings.network
                    )
                    logged = True
            await self._wait(None)
        raise AgentExitError(0, "stopped")

    def _node(self) -> Body | None:
        """Our Node object; None for a host that is no Node (or when Nodes are unreadable)."""
        assert self._nodes is not None
        return self._nodes.objects.get(self.settings.node_name)

    def _endpoint(self, network: MeshNetwork) -> EndpointChoice:
        return choose_endpoint(
            self._node(), network.spec.listen_port, self.settings.endpoint, self.settings.node_ip
        )

    def _registration(self, network: MeshNetwork) -> registration.Registration:
        assert self._key is not None
        node = self._node()
        return registration.Registration(
            name=self.settings.node_name,
            network=self.settings.network,
            node_name="" if self.settings.external_host else self.settings.node_name,
            public_key=self._key.public_key().base64(),
            endpoint=self._endpoint(network).endpoint,
            node_uid=(node or {}).get("metadata", {}).get("uid"),
        )

    async def _report_endpoint_problem(self, body: Body, network: MeshNetwork) -> None:
        """One Event per new problem with the Node's endpoint annotations."""
        problem = self._endpoint(network).problem
        if problem is not None and problem != self._endpoint_problem:
            log.warning("Node %s: %s", self.settings.node_name, problem)
            await self.events.record(
                body, EventType.WARNING, Reason.ENDPOINT_OVERRIDE_INVALID, problem
            )
        self._endpoint_problem = problem

    async def _register(self, network: MeshNetwork) -> None:
        """Create our MeshAgent, or adopt the one there (after a deletion in progress ends)."""
        wanted = self._registration(network)
        waiting_logged = False
        while not self._stopping:
            existing = self._own_body()
            if existing is None:
                created = await registration.create(self.kube, wanted)
                if created is not None:
                    log.info(
                        "registered; waiting for the operator to allocate an address",
                        extra={"phase": "registered", "elapsed": self._elapsed()},
                    )
                    return
            elif (existing["metadata"].get("deletionTimestamp")) is None:
                try:
                    await registration.reconcile_own(self.kube, wanted, existing)
                except registration.RegistrationError as error:
                    await self.events.record(
                        existing, EventType.WARNING, Reason.KEY_ERROR, str(error)
                    )
                    raise AgentExitError(4, str(error)) from error
                log.info(
                    "adopted the existing MeshAgent",
                    extra={"phase": "registered", "elapsed": self._elapsed()},
                )
                return
            elif not waiting_logged:
                log.info("our MeshAgent is being deleted; registering again once it is gone")
                waiting_logged = True
            # A create that met an object not yet in our cache, or a deletion in
            # progress: the informer wakes us when the object changes.
            await self._wait(None if existing is not None else time.monotonic() + RETRY_SECONDS)
        raise AgentExitError(0, "stopped")

    def _elapsed(self) -> float:
        return round(time.monotonic() - self._started, 4)

    async def _loop(self) -> None:
        now = time.monotonic()
        self._next_resync = now + self.settings.resync_seconds
        self._next_health = now + self.settings.health_check_seconds
        while not self._stopping:
            now = time.monotonic()
            force = now >= self._next_resync
            if force:
                self._next_resync = now + self.settings.resync_seconds
                self._resolved.clear()
            if now >= self._next_health:
                self._next_health = now + self.settings.health_check_seconds
            try:
                await self._sync(force=force)
            except AgentExitError:
                raise
            except Exception:
                log.exception("sync failed; retrying in %.0fs", RETRY_SECONDS)
                self._retry_at = time.monotonic() + RETRY_SECONDS
            deadlines = [self._next_resync, self._next_health]
            if self._retry_at is not None:
                deadlines.append(self._retry_at)
            if (due := self.status.due_at) is not None:
                deadlines.append(due)
            await self._wait(min(deadlines))

    # --- one sync ---------------------------------------------------------------------

    async def _sync(self, *, force: bool) -> None:
        body = self._own_body()
        network = self._network()
        if body is None or body["metadata"].get("deletionTimestamp") is not None:
            await self._teardown("deleted" if body is None else "being deleted")
            return
        if network is None:
            return
        wanted = self._registration(network)
        if wanted.spec_patch(body):
            patched = await registration.reconcile_own(self.kube, wanted, body)
            if patched is None:
                return
            body = patched
        await self._report_endpoint_problem(body, network)
        me = parse_mesh_agent(body)
        if not me.status.addresses:
            try:
                await self._prepare_device(network)
            except ports.PortInUseError as error:
                await self._exit_port_in_use(body, me, str(error))
            return
        if not self._configured and not self._address_seen:
            self._address_seen = True
            log.info(
                "permanent address %s allocated",
                ", ".join(me.status.addresses),
                extra={"phase": "address", "elapsed": self._elapsed()},
            )
        if self._retry_at is not None and time.monotonic() < self._retry_at and not force:
            return
        self._retry_at = None
        self._feed_planner()
        await self._resolve(self._planner.endpoint_hostnames())
        assert self._key is not None
        # The previous plan when nothing relevant changed (a health tick, our own report).
        plan = self._planner.plan(
            me,
            self._key.public_key(),
            network.spec,
            self._resolved,
            cluster_prefixes=network.cluster_networks,
        )
        self._plan = plan
        started = time.monotonic()
        try:
            await self._apply(me, network, plan, force=force)
            self._configure_error = None
        except ports.PortInUseError as error:
            await self._exit_port_in_use(body, me, str(error))
        except (DataplaneError, OSError, ValueError) as error:
            self._prepared_port = None  # the retry checks the port again
            self._configure_error = f"{type(error).__name__}: {error}"
            log.error("configuring %s failed: %s", self.settings.interface, error)
            self._retry_at = time.monotonic() + RETRY_SECONDS
        metrics.AGENT_SYNC_DURATION.observe(time.monotonic() - started)
        await self._report_skips(body, plan.skipped)
        await self._report_refused_routes(body, plan.refused_routes)
        await self._report(body, me)

    async def _prepare_device(self, network: MeshNetwork) -> None:
        """While the operator allocates, what configuring needs besides the address: the
        listen port checked and the MTU read (each a netlink round). The interface itself
        waits for the address: it is created with it, in one step (DESIGN §4)."""
        port = network.spec.listen_port
        if self._configured or self._prepared_port == port:
            return
        self._prepared_port = port
        await self._check_listen_port(port)  # PortInUseError: handled as when configuring
        if network.spec.mtu is None and self._mtu_default is None:
            self._mtu_default = (
                await self.device.underlay_mtu(self.settings.node_ip) - WIREGUARD_OVERHEAD
            )

    async def _exit_port_in_use(self, body: Body, me: MeshAgent, message: str) -> None:
        """Say it everywhere an admin looks (condition, Event, log, termination message), exit."""
        self._configure_error, self._configure_reason = message, "PortInUse"
        log.error("%s", message)
        ports.write_termination_message(message)
        await self._report(body, me, flush=True)
        await self.events.record(body, EventType.WARNING, Reason.PORT_IN_USE, message)
        raise AgentExitError(5, message)

    async def _check_listen_port(self, port: int) -> None:
        """Before (re)configuring: is the WireGuard port taken by anything but our interface?"""
        if await self.device.index() is not None:
            with contextlib.suppress(DataplaneError, OSError):
                if (await self.device.read_state()).listen_port == port:
                    return  # our own interface (left up by the previous agent) holds it
        if ports.udp_port_taken(port):
            raise ports.PortInUseError(
                ports.wireguard_port_message(self.settings.node_name, self.settings.network, port)
            )

    def _feed_planner(self) -> None:
        """Hand the planner the members changed since the last sync (all after a list)."""
        assert self._agents is not None
        changes = self._agents.take_changes()
        if changes is None:
            self._planner.set_members(self._agents.objects)
            return
        for name in changes:
            self._planner.set_member(name, self._agents.objects.get(name))

    async def _resolve(self, hostnames: set[str]) -> None:
        """Resolve endpoint names not resolved since the last resync (I/O, so not in planning)."""
        loop = asyncio.get_running_loop()
        for host in sorted(hostnames - self._resolved.keys()):
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), DNS_TIMEOUT_SECONDS
                )
                self._resolved[host] = ipaddress.ip_address(infos[0][4][0])
            except (OSError, TimeoutError, ValueError, IndexError) as error:
                log.warning("endpoint host %s does not resolve: %s", host, error)
                self._resolved[host] = None

    async def _apply(
        self, me: MeshAgent, network: MeshNetwork, plan: PeerSetPlan, *, force: bool
    ) -> None:
        assert self._key is not None
        spec = network.spec
        if spec.mtu is not None:
            mtu = spec.mtu
        else:
            if self._mtu_default is None:
                self._mtu_default = (
                    await self.device.underlay_mtu(self.settings.node_ip) - WIREGUARD_OVERHEAD
                )
            mtu = self._mtu_default
        addresses = tuple(
            ipaddress.ip_interface(f"{a}/{ipaddress.ip_address(a).max_prefixlen}")
            for a in me.status.addresses
        )
        device_key = (spec.listen_port, addresses, mtu, plan.forwarding)
        if not self._configured or device_key != self._device_key or force:
            port_changed = device_key[0] != (self._device_key or (0,))[0]
            # The first configuration follows the wait for the address, which checked it.
            checked = not self._configured and self._prepared_port == spec.listen_port
            if port_changed and not checked:
                await self._check_listen_port(spec.listen_port)
            versions = sorted({a.version for a in addresses}) if plan.forwarding else []
            await self.device.ensure(
                DeviceSpec(
                    private_key=self._key,
                    listen_port=spec.listen_port,
                    addresses=addresses,
                    mtu=mtu,
                    peers=plan.peers,
                ),
                versions,
            )
            first = not self._configured
            self._configured = True
            self._device_key = device_key
            self._applied_peers = plan.peers
            if first:
                index = await self.device.index()
                log.info(
                    "interface %s up with %s (ifindex %s, %d peers)",
                    self.settings.interface,
                    ", ".join(map(str, addresses)),
                    index,
                    len(plan.peers),
                    extra={
                        "phase": "configured",
                        "elapsed": self._elapsed(),
                        "ifindex": index,
                        "peers": len(plan.peers),
                    },
                )
                await self.events.record(
                    me_body_ref(me),
                    EventType.NORMAL,
                    Reason.INTERFACE_CONFIGURED,
                    f"{self.settings.interface} up with {', '.join(map(str, addresses))},"
                    f" {len(plan.peers)} peer(s)",
                )
        elif plan.peers != self._applied_peers:
            change = await self.device.apply_peers(plan.peers)
            self._applied_peers = plan.peers
            log.info(
                "peers: +%d ~%d -%d (now %d)",
                len(change.add),
                len(change.update),
                len(change.remove),
                len(plan.peers),
                extra={"phase": "peers", "peers": len(plan.peers)},
            )

    async def _teardown(self, why: str) -> None:
        index = await self.device.index()
        if not self._configured and index is None:
            return
        await self.device.remove()
        self._configured = False
        self._prepared_port = None
        self._address_seen = False
        self._device_key = None
        self._applied_peers = None
        self._reported_skips.clear()
        self._reported_refusals = ()
        log.info(
            "our MeshAgent is %s: removed %s; waiting for a MeshAgent %s to exist again",
            why,
            self.settings.interface,
            self.settings.node_name,
        )

    async def _report_skips(self, body: Body, skipped: tuple[SkippedPeer, ...]) -> None:
        current = {s.name: s.reason for s in skipped}
        for name, reason in current.items():
            if self._reported_skips.get(name) != reason:
                await self.events.record(
                    body,
                    EventType.WARNING,
                    Reason.PEER_SKIPPED,
                    f"peer {name} left out of {self.settings.interface}: {reason};"
                    " the rest of the mesh stays configured",
                )
        self._reported_skips = current

    async def _report_refused_routes(self, body: Body, refused: tuple[str, ...]) -> None:
        """One Event on our own MeshAgent when the set of refused prefixes changes (every
        node drops them; only the member's own agent says so, not all 5000)."""
        if refused and refused != self._reported_refusals:
            await self.events.record(
                body,
                EventType.WARNING,
                Reason.ROUTE_REFUSED,
                "extraAllowedIPs not routed by any member: "
                + "; ".join(refused)
                + ". A cluster admin adds the prefix to the MeshNetwork's routablePrefixes"
                " (never the pool or the cluster's service/pod ranges) or removes it here",
            )
        self._reported_refusals = refused

    async def _report(self, body: Body, me: MeshAgent, *, flush: bool = False) -> None:
        plan = self._plan
        total = healthy = 0
        unhealthy: tuple[str, ...] = ()
        if self._configured:
            state = await self.device.read_state()
            now = datetime.now(UTC)
            network = self._network()
            healthy, unhealthy = peer_health(
                state,
                plan.names,
                now,
                self._rx.silence(state, time.monotonic()),
                network.spec.persistent_keepalive if network is not None else 0,
            )
            total = len(plan.names)
            ages = {}
            for key, name in plan.names.items():
                peer = state.peers.get(key)
                if peer is not None and peer.last_handshake is not None:
                    ages[name] = (now - peer.last_handshake).total_seconds()
            self._handshake_ages.update(ages)
        metrics.AGENT_PEERS.set(total)
        metrics.AGENT_PEERS_HEALTHY.set(healthy)
        allocated_condition = me.condition(ALLOCATED)
        choice = self.device.choice
        assert choice is not None
        observation = Observation(
            backend=choice.kind,
            backend_reason=choice.reason,
            interface=self.settings.interface,
            configured_addresses=tuple(
                f"{a}/{ipaddress.ip_address(a).max_prefixlen}" for a in me.status.addresses
            )
            if self._configured
            else (),
            listen_port=self._device_key[0] if self._device_key else 0,
            allocated=bool(me.status.addresses)
            and (allocated_condition is None or allocated_condition.status == "True"),
            configured=self._configured,
            configure_error=self._configure_error,
            configure_reason=self._configure_reason,
            total=total,
            healthy=healthy,
            unhealthy=unhealthy,
            skipped=plan.skipped,
            self_problem=plan.self_problem,
            refused_routes=plan.refused_routes,
        )
        await self.status.report(body, observation, now=flush)


def me_body_ref(me: MeshAgent) -> Body:
    """Enough of our object for an Event's involvedObject."""
    return {
        "kind": names.MESH_AGENT_KIND,
        "metadata": {
            "name": me.name,
            "uid": me.uid,
            "resourceVersion": me.metadata.resource_version,
        },
    }
