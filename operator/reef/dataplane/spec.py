"""What a WireGuard device should look like, and what it looks like now.

Desired state (:class:`DeviceSpec`, :class:`PeerSpec`) and observed state
(:class:`DeviceState`, :class:`PeerState`) are plain frozen values so that the
decision "what must change" is a pure function (:mod:`reef.dataplane.diff`),
property-tested without a kernel. Values are normalised on construction
(allowed IPs sorted and de-duplicated) so that equality means "same config".

Endpoints are IP literals: WireGuard itself takes no host names over UAPI or
netlink, so name resolution belongs to the caller (the agent), not here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Self

from reef.dataplane.keys import Key

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_MTU = 1420  # WireGuard's own default: 1500 minus the worst-case (IPv6) overhead


_NETS = (ipaddress.IPv4Network, ipaddress.IPv6Network)


def _network_order(net: IPNetwork) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)


def normalize_networks(nets: Iterable[IPNetwork | str]) -> tuple[IPNetwork, ...]:
    """Sorted, de-duplicated networks; strings are parsed strictly (no host bits)."""
    if isinstance(nets, tuple) and (not nets or (len(nets) == 1 and isinstance(nets[0], _NETS))):
        return nets  # already normal: most peers have one host route (5000 sorts per plan)
    parsed = {n if not isinstance(n, str) else ipaddress.ip_network(n) for n in nets}
    return tuple(sorted(parsed, key=_network_order))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a peer is reached on the underlay: IP literal and UDP port."""

    host: IPAddress
    port: int

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"endpoint port must be 1..65535, got {self.port}")

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse ``1.2.3.4:51820`` or ``[2001:db8::1]:51820``."""
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"endpoint must be IP:port or [IPv6]:port, got {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        # A zone index (fe80::1%eth0) cannot be represented by ip_address; drop it.
        return cls(ipaddress.ip_address(host.partition("%")[0]), int(port))

    def __str__(self) -> str:
        if self.host.version == 6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """One peer as the device should know it.

    ``endpoint=None`` means "do not care": the live endpoint (learnt from the
    peer's own packets when it roams) is left alone. ``persistent_keepalive``
    is in seconds, 0 disables it.
    """

    public_key: Key
    allowed_ips: tuple[IPNetwork, ...] = ()
    endpoint: Endpoint | None = None
    persistent_keepalive: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_ips", normalize_networks(self.allowed_ips))
        if not 0 <= self.persistent_keepalive <= 65535:
            raise ValueError(
                f"persistent_keepalive must be 0..65535 s, got {self.persistent_keepalive}"
            )


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """The whole interface: identity, addresses and (optionally) peers.

    ``peers=None`` leaves the live peers untouched, so an agent that restarts
    and re-ensures its interface does not drop traffic before it has read the
    peer list again; a tuple (even empty) makes the peer set exactly that.
    """

    private_key: Key
    listen_port: int
    addresses: tuple[IPInterface, ...]
    mtu: int = DEFAULT_MTU
    peers: tuple[PeerSpec, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.listen_port < 65536:
            raise ValueError(f"listen_port must be 1..65535, got {self.listen_port}")
        if not 576 <= self.mtu <= 65535:
            raise ValueError(f"mtu must be 576..65535 (IPv4 minimum), got {self.mtu}")
        object.__setattr__(self, "addresses", tuple(dict.fromkeys(self.addresses)))


@dataclass(frozen=True, slots=True)
class PeerState:
    """One peer as the device reports it, config plus live counters."""

    public_key: Key
    allowed_ips: tuple[IPNetwork, ...] = ()
    endpoint: Endpoint | None = None
    persistent_keepalive: int = 0
    last_handshake: datetime | None = None
    rx_bytes: int = 0
    tx_bytes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_ips", normalize_networks(self.allowed_ips))

    def as_spec(self) -> PeerSpec:
        """The configuration part, comparable with a desired :class:`PeerSpec`."""
        return PeerSpec(
            public_key=self.public_key,
            allowed_ips=self.allowed_ips,
            endpoint=self.endpoint,
            persistent_keepalive=self.persistent_keepalive,
        )


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the device reports: its identity and its peers by public key."""

    public_key: Key | None = None
    listen_port: int = 0
    peers: dict[Key, PeerState] = field(default_factory=dict)


#: What a health check reads of each peer, by its raw public key: the last handshake as
#: Unix seconds (0.0: none yet) and the bytes received so far. Nothing else: at thousands
#: of peers, decoding every peer's configuration on each check was most of an idle agent's
#: CPU (:meth:`reef.dataplane.base.Backend.read_liveness`).
PeerLiveness = dict[bytes, tuple[float, int]]


def liveness_of(state: DeviceState) -> PeerLiveness:
    """The liveness part of a whole device state."""
    return {
        key.raw: (peer.last_handshake.timestamp() if peer.last_handshake else 0.0, peer.rx_bytes)
        for key, peer in state.peers.items()
    }
