"""Configuring the interface: the listen port checked, the MTU chosen, the device written.

While the operator allocates, :meth:`DeviceConfigurator.prepare` does what needs no
address; the interface itself waits for the address: it is created with it, in one step
(DESIGN §4). :meth:`DeviceConfigurator.apply` then writes the whole device when something
of it changed (or on a resync) and only the peer difference otherwise. A listen port taken
by anything but our own interface raises :class:`reef.agent.ports.PortInUseError`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import Any

from reef.agent import ports
from reef.agent.control import LOGGER_NAME, elapsed
from reef.agent.device import WIREGUARD_OVERHEAD, Device
from reef.agent.peers import PeerSetPlan
from reef.api import names
from reef.api.records import MeshAgent, MeshNetwork
from reef.dataplane import DataplaneError, DeviceSpec, Key, PeerSpec
from reef.kube.events import EventRecorder
from reef.observability.events import EventType, Reason
from reef.settings import AgentSettings

Body = dict[str, Any]

log = logging.getLogger(LOGGER_NAME)


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


class DeviceConfigurator:
    """What was written to the device, and the last configuration error.

    Read from the probe server's thread too (readiness): plain attributes.
    """

    def __init__(
        self, settings: AgentSettings, device: Device, events: EventRecorder, started: float
    ) -> None:
        self._settings = settings
        self._device = device
        self._events = events
        self._started = started
        self.configured = False
        #: (listen port, addresses, mtu, forwarding) as last written.
        self.device_key: tuple[Any, ...] | None = None
        self._applied_peers: tuple[PeerSpec, ...] | None = None
        self._mtu_default: int | None = None
        self._prepared_port: int | None = None
        self.error: str | None = None
        self.error_reason = "ConfigurationFailed"

    @property
    def listen_port(self) -> int:
        return self.device_key[0] if self.device_key else 0

    async def prepare(self, network: MeshNetwork) -> None:
        """While the operator allocates, what configuring needs besides the address: the
        listen port checked and the MTU read (each a netlink round)."""
        port = network.spec.listen_port
        if self.configured or self._prepared_port == port:
            return
        self._prepared_port = port
        await self._check_listen_port(port)  # PortInUseError: handled as when configuring
        if network.spec.mtu is None and self._mtu_default is None:
            self._mtu_default = (
                await self._device.underlay_mtu(self._settings.node_ip) - WIREGUARD_OVERHEAD
            )

    def failed(self, error: Exception) -> None:
        self._prepared_port = None  # the retry checks the port again
        self.error = f"{type(error).__name__}: {error}"
        log.error("configuring %s failed: %s", self._settings.interface, error)

    def port_in_use(self, message: str) -> None:
        self.error, self.error_reason = message, "PortInUse"

    async def _check_listen_port(self, port: int) -> None:
        """Before (re)configuring: is the WireGuard port taken by anything but our interface?"""
        if await self._device.index() is not None:
            with contextlib.suppress(DataplaneError, OSError):
                if (await self._device.read_state()).listen_port == port:
                    return  # our own interface (left up by the previous agent) holds it
        if ports.udp_port_taken(port):
            raise ports.PortInUseError(
                ports.wireguard_port_message(self._settings.node_name, self._settings.network, port)
            )

    async def apply(
        self, key: Key, me: MeshAgent, network: MeshNetwork, plan: PeerSetPlan, *, force: bool
    ) -> None:
        spec = network.spec
        if spec.mtu is not None:
            mtu = spec.mtu
        else:
            if self._mtu_default is None:
                self._mtu_default = (
                    await self._device.underlay_mtu(self._settings.node_ip) - WIREGUARD_OVERHEAD
                )
            mtu = self._mtu_default
        addresses = tuple(
            ipaddress.ip_interface(f"{a}/{ipaddress.ip_address(a).max_prefixlen}")
            for a in me.status.addresses
        )
        device_key = (spec.listen_port, addresses, mtu, plan.forwarding)
        if not self.configured or device_key != self.device_key or force:
            port_changed = device_key[0] != (self.device_key or (0,))[0]
            # The first configuration follows the wait for the address, which checked it.
            checked = not self.configured and self._prepared_port == spec.listen_port
            if port_changed and not checked:
                await self._check_listen_port(spec.listen_port)
            versions = sorted({a.version for a in addresses}) if plan.forwarding else []
            await self._device.ensure(
                DeviceSpec(
                    private_key=key,
                    listen_port=spec.listen_port,
                    addresses=addresses,
                    mtu=mtu,
                    peers=plan.peers,
                ),
                versions,
            )
            first = not self.configured
            self.configured = True
            self.device_key = device_key
            self._applied_peers = plan.peers
            if first:
                await self._announce(me, addresses, plan)
        elif plan.peers != self._applied_peers:
            change = await self._device.apply_peers(plan.peers)
            self._applied_peers = plan.peers
            log.info(
                "peers: +%d ~%d -%d (now %d)",
                len(change.add),
                len(change.update),
                len(change.remove),
                len(plan.peers),
                extra={"phase": "peers", "peers": len(plan.peers)},
            )

    async def _announce(self, me: MeshAgent, addresses: tuple[Any, ...], plan: PeerSetPlan) -> None:
        """The first configuration: a log line with the phase timing and an Event."""
        interface = self._settings.interface
        index = await self._device.index()
        log.info(
            "interface %s up with %s (ifindex %s, %d peers)",
            interface,
            ", ".join(map(str, addresses)),
            index,
            len(plan.peers),
            extra={
                "phase": "configured",
                "elapsed": elapsed(self._started),
                "ifindex": index,
                "peers": len(plan.peers),
            },
        )
        await self._events.record(
            me_body_ref(me),
            EventType.NORMAL,
            Reason.INTERFACE_CONFIGURED,
            f"{interface} up with {', '.join(map(str, addresses))}, {len(plan.peers)} peer(s)",
        )

    async def remove(self) -> bool:
        """Remove the interface (if there is anything to remove); forget what was written."""
        index = await self._device.index()
        if not self.configured and index is None:
            return False
        await self._device.remove()
        self.configured = False
        self._prepared_port = None
        self.device_key = None
        self._applied_peers = None
        return True
