"""Kernel backend: the wireguard module, driven over generic netlink (pyroute2).

Preferred wherever the module exists: no extra process, packets never leave
the kernel. pyroute2's ``WireGuard.set`` carries one peer per call and never
sends ``replace_peers``, so a sync is "read, diff, write the difference peer by
peer" — which is what we want anyway (see :mod:`reef.dataplane.diff`). A
netlink message is capped (~64 KiB), so a peer with many allowed IPs is
written in chunks: the first replaces the list, the rest append.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from reef.dataplane import links
from reef.dataplane.base import BackendKind, DataplaneError
from reef.dataplane.diff import KnownPeers, PeerPlan, diff_peers
from reef.dataplane.keys import Key
from reef.dataplane.netlink import IPRoute, NetlinkError, WireGuard
from reef.dataplane.spec import (
    DeviceSpec,
    DeviceState,
    Endpoint,
    IPNetwork,
    PeerLiveness,
    PeerSpec,
    PeerState,
    liveness_of,
)

# Each allowed IP is ~28 bytes of netlink attributes: 512 stay far below 64 KiB.
ALLOWED_IPS_PER_MESSAGE = 512
_EOPNOTSUPP = 95


def _chunks(nets: Sequence[IPNetwork], size: int) -> Iterable[Sequence[IPNetwork]]:
    for start in range(0, len(nets), size):
        yield nets[start : start + size]


def _decode_key(value: Any) -> Key:
    return Key.from_base64(value.decode("ascii") if isinstance(value, bytes) else value)


class KernelBackend:
    """One kernel WireGuard interface. Not thread-safe; one agent owns it."""

    kind: BackendKind = "kernel"

    def __init__(self, ifname: str, *, chunk_size: int = ALLOWED_IPS_PER_MESSAGE) -> None:
        if not 0 < len(ifname) <= 15:
            raise ValueError(f"interface name must be 1..15 characters, got {ifname!r}")
        self.ifname = ifname
        self.chunk_size = chunk_size
        self.ipr = IPRoute()
        self.routes = links.RouteSync()
        #: What the device holds, read once and then kept as written (KnownPeers).
        self.known = KnownPeers()
        self.wg = WireGuard()

    def _create(self) -> int:
        try:
            self.ipr.link("add", ifname=self.ifname, kind="wireguard")
        except NetlinkError as exc:
            if exc.code == _EOPNOTSUPP:
                raise DataplaneError(
                    "the kernel has no wireguard module (link kind 'wireguard' is not"
                    " supported); load it with `modprobe wireguard` or use the userspace backend"
                ) from exc
            raise
        return links.require_index(self.ipr, self.ifname)

    def ensure_interface(self, spec: DeviceSpec) -> None:
        # A (re)configuration, the periodic resync's too, reads the peers anew.
        self.known.forget()
        index = links.link_index(self.ipr, self.ifname)
        if index is None:
            index = self._create()
        elif (kind := links.link_kind(self.ipr, index)) != "wireguard":
            raise DataplaneError(
                f"interface {self.ifname} exists but is of kind {kind!r}, not a kernel"
                " wireguard device; delete it or configure another interface name"
            )
        state = self.read_state()
        changes: dict[str, Any] = {}
        if state.public_key != spec.private_key.public_key():
            changes["private_key"] = spec.private_key.base64()
        if state.listen_port != spec.listen_port:
            changes["listen_port"] = spec.listen_port
        if changes:
            self.wg.set(self.ifname, **changes)
        # Configuring is when the agent re-checks the interface: read its routes anew.
        self.routes.forget()
        links.configure_link(self.ipr, index, spec.addresses, spec.mtu)
        if spec.peers is not None:
            self.apply_peers(spec.peers)

    def _set_peer(self, peer: PeerSpec, *, replace_allowed_ips: bool, update_only: bool) -> None:
        base: dict[str, Any] = {
            "public_key": peer.public_key.base64(),
            "persistent_keepalive": peer.persistent_keepalive,
            "update_only": update_only,
        }
        if peer.endpoint is not None:
            base["endpoint_addr"] = str(peer.endpoint.host)
            base["endpoint_port"] = peer.endpoint.port
        if not replace_allowed_ips:
            self.wg.set(self.ifname, peer=base)
            return
        chunks = list(_chunks(peer.allowed_ips, self.chunk_size)) or [()]
        for number, chunk in enumerate(chunks):
            message = dict(base, allowed_ips=[str(net) for net in chunk])
            # Only the first message replaces; later ones append to the list.
            message["replace_allowed_ips"] = number == 0
            if number > 0:
                message["update_only"] = True
            self.wg.set(self.ifname, peer=message)

    def apply_peers(self, desired: Sequence[PeerSpec]) -> PeerPlan:
        plan = diff_peers(desired, self.known.get(lambda: self.read_state().peers))
        try:
            # Removals first, so an allowed IP moving between peers is never claimed twice.
            for key in plan.remove:
                self.wg.set(self.ifname, peer={"public_key": key.base64(), "remove": True})
            for change in plan.update:
                self._set_peer(
                    change.peer, replace_allowed_ips=change.allowed_ips_changed, update_only=True
                )
            for peer in plan.add:
                self._set_peer(peer, replace_allowed_ips=True, update_only=False)
        except BaseException:
            self.known.forget()  # how much of it the device took is unknown
            raise
        self.known.applied(plan)
        index = links.require_index(self.ipr, self.ifname)
        self.routes.sync(self.ipr, index, (net for peer in desired for net in peer.allowed_ips))
        return plan

    def read_state(self) -> DeviceState:
        try:
            messages = self.wg.info(self.ifname)
        except NetlinkError as exc:
            raise DataplaneError(f"cannot read WireGuard device {self.ifname}: {exc}") from exc
        public_key: Key | None = None
        listen_port = 0
        peers: dict[Key, PeerState] = {}
        for message in messages:
            raw_public = message.get_attr("WGDEVICE_A_PUBLIC_KEY")
            if raw_public is not None and _decode_key(raw_public).raw != bytes(32):
                public_key = _decode_key(raw_public)
            listen_port = message.get_attr("WGDEVICE_A_LISTEN_PORT") or listen_port
            for attrs in message.get_attr("WGDEVICE_A_PEERS") or ():
                peer = _decode_peer(attrs)
                # A peer with many allowed IPs continues in the next dump message.
                if (earlier := peers.get(peer.public_key)) is not None:
                    peer = PeerState(
                        peer.public_key,
                        earlier.allowed_ips + peer.allowed_ips,
                        earlier.endpoint or peer.endpoint,
                        earlier.persistent_keepalive,
                        earlier.last_handshake,
                        earlier.rx_bytes,
                        earlier.tx_bytes,
                    )
                peers[peer.public_key] = peer
        return DeviceState(public_key=public_key, listen_port=listen_port, peers=peers)

    def read_liveness(self) -> PeerLiveness:
        # pyroute2 decodes every attribute of the dump anyway; reading less saves little.
        return liveness_of(self.read_state())

    def remove_interface(self) -> None:
        self.routes.forget()
        self.known.forget()
        links.delete_link(self.ipr, self.ifname)

    def close(self) -> None:
        self.wg.close()
        self.ipr.close()


def _decode_peer(attrs: Any) -> PeerState:
    endpoint = None
    if (raw_endpoint := attrs.get_attr("WGPEER_A_ENDPOINT")) is not None:
        addr = raw_endpoint.get("addr")
        port = raw_endpoint.get("port")
        if addr and port:
            endpoint = Endpoint(ipaddress.ip_address(addr), port)
    handshake = None
    if (raw_time := attrs.get_attr("WGPEER_A_LAST_HANDSHAKE_TIME")) is not None:
        seconds = raw_time.get("tv_sec", 0) + raw_time.get("tv_nsec", 0) / 1e9
        if seconds:
            handshake = datetime.fromtimestamp(seconds, tz=UTC)
    allowed = tuple(
        ipaddress.ip_network(item.get("addr"), strict=False)
        for item in attrs.get_attr("WGPEER_A_ALLOWEDIPS") or ()
        if item.get("addr")
    )
    return PeerState(
        public_key=_decode_key(attrs.get_attr("WGPEER_A_PUBLIC_KEY")),
        allowed_ips=allowed,
        endpoint=endpoint,
        persistent_keepalive=attrs.get_attr("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") or 0,
        last_handshake=handshake,
        rx_bytes=attrs.get_attr("WGPEER_A_RX_BYTES") or 0,
        tx_bytes=attrs.get_attr("WGPEER_A_TX_BYTES") or 0,
    )
