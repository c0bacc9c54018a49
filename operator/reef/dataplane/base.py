"""The one interface the agent programs against, whatever drives WireGuard.

The agent must not care whether the kernel module or wireguard-go moves the
packets: both backends implement :class:`Backend`, and
:func:`reef.dataplane.select.open_backend` picks one and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from reef.dataplane.diff import PeerPlan
from reef.dataplane.spec import DeviceSpec, DeviceState, PeerLiveness, PeerSpec

BackendKind = Literal["kernel", "userspace"]


class DataplaneError(RuntimeError):
    """Configuring WireGuard failed; the message says what and what to check."""


class Backend(Protocol):
    """A WireGuard interface with one name, driven by one implementation."""

    kind: BackendKind
    ifname: str

    def ensure_interface(self, spec: DeviceSpec) -> None:
        """Create the interface if missing and make it match ``spec``.

        Private key, listen port, addresses, MTU and link up in one call; an
        interface that already matches is left untouched (not recreated). When
        ``spec.peers`` is not None the peers are synced too (:meth:`apply_peers`).
        """
        ...

    def apply_peers(self, desired: Sequence[PeerSpec]) -> PeerPlan:
        """Make the peer set exactly ``desired``, writing only the difference,
        and route the peers' allowed IPs via the interface. Returns what was done."""
        ...

    def read_state(self) -> DeviceState:
        """Peers as the device reports them: handshakes, endpoints, counters."""
        ...

    def read_liveness(self) -> PeerLiveness:
        """Each peer's last handshake and received bytes only (the agent's health check,
        every few seconds: cheaper than :meth:`read_state` where the backend can)."""
        ...

    def remove_interface(self) -> None:
        """Delete the interface (and stop what drives it); no error if absent."""
        ...

    def close(self) -> None:
        """Release sockets; the interface stays (traffic survives agent restarts)."""
        ...
