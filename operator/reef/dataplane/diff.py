"""Desired peers vs live peers: the smallest set of changes.

Why a diff instead of "replace everything": rewriting a peer that did not
change throws away its session in wireguard-go (``replace_peers`` removes and
re-creates every peer) and costs one netlink round trip per peer in the
kernel. With thousands of nodes, every MeshAgent event would otherwise
re-handshake the whole mesh. Pure function, so it is property-tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reef.dataplane.keys import Key
from reef.dataplane.spec import PeerSpec, PeerState


@dataclass(frozen=True, slots=True)
class PeerUpdate:
    """A peer that exists but differs; ``allowed_ips_changed`` says whether its
    allowed-IP list must be replaced (the expensive, routing-relevant part)."""

    peer: PeerSpec
    allowed_ips_changed: bool


@dataclass(frozen=True, slots=True)
class PeerPlan:
    """Operations that turn the live peer set into the desired one."""

    add: tuple[PeerSpec, ...] = ()
    update: tuple[PeerUpdate, ...] = ()
    remove: tuple[Key, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.update or self.remove)

    def __len__(self) -> int:
        return len(self.add) + len(self.update) + len(self.remove)


def _differs(desired: PeerSpec, live: PeerState) -> bool:
    if desired.allowed_ips != live.allowed_ips:
        return True
    if desired.persistent_keepalive != live.persistent_keepalive:
        return True
    # No desired endpoint: whatever the peer roamed to is fine.
    return desired.endpoint is not None and desired.endpoint != live.endpoint


def diff_peers(desired: Iterable[PeerSpec], live: Mapping[Key, PeerState]) -> PeerPlan:
    """Plan the changes from ``live`` to ``desired``.

    Raises ValueError when ``desired`` names one public key twice: WireGuard
    would silently keep only the last one, which hides a bug upstream.
    """
    wanted: dict[Key, PeerSpec] = {}
    for peer in desired:
        if peer.public_key in wanted:
            raise ValueError(f"desired peers name public key {peer.public_key} twice")
        wanted[peer.public_key] = peer
    add: list[PeerSpec] = []
    update: list[PeerUpdate] = []
    for key, peer in wanted.items():
        current = live.get(key)
        if current is None:
            add.append(peer)
        elif _differs(peer, current):
            update.append(PeerUpdate(peer, peer.allowed_ips != current.allowed_ips))
    remove = tuple(key for key in live if key not in wanted)
    return PeerPlan(add=tuple(add), update=tuple(update), remove=remove)
