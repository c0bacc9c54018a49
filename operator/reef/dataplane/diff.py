"""Desired peers vs live peers: the smallest set of changes.

Why a diff instead of "replace everything": rewriting a peer that did not
change throws away its session in wireguard-go (``replace_peers`` removes and
re-creates every peer) and costs one netlink round trip per peer in the
kernel. With thousands of nodes, every MeshAgent event would otherwise
re-handshake the whole mesh. Pure function, so it is property-tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


def _differs(desired: PeerSpec, live: PeerState | PeerSpec) -> bool:
    if desired is live:
        return False  # the very spec written last time (reef.dataplane.diff.KnownPeers)
    if desired.allowed_ips != live.allowed_ips:
        return True
    if desired.persistent_keepalive != live.persistent_keepalive:
        return True
    # No desired endpoint: whatever the peer roamed to is fine.
    return desired.endpoint is not None and desired.endpoint != live.endpoint


def diff_peers(desired: Iterable[PeerSpec], live: Mapping[Key, PeerState | PeerSpec]) -> PeerPlan:
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


#: A peer's configuration as a diff reads it: a device's report or a desired spec.
PeerConfig = PeerState | PeerSpec


class KnownPeers:
    """The peers a device holds, as a backend last read them and then wrote them.

    Reading a device costs as much as it has peers (at 5000, a 1.3 MB answer from
    wireguard-go decoded into 5000 states, for every member that joined or moved), and
    all but the changed peers are what this process itself wrote. So a backend reads
    the device once, then keeps what it wrote (the desired specs themselves, shared
    with the plan); :meth:`forget` makes the next diff read it again: after an error,
    and on every (re)configuration, which the agent's periodic resync also runs — the
    backstop for anything changed behind our back (a hand-made ``wg set``, a peer's
    endpoint roaming away from the one we set). The userspace backend's read compares
    the device with the desired specs and keeps those specs for the peers that match
    (:func:`reef.dataplane.uapi.decode_peer_configs`), so a resync allocates nothing per
    peer that is as it was written.
    """

    def __init__(self) -> None:
        self._peers: dict[Key, PeerConfig] | None = None

    def get(self, read: Callable[[], Mapping[Key, PeerConfig]]) -> Mapping[Key, PeerConfig]:
        """The known peers; ``read`` (the device's report) when nothing is known."""
        if self._peers is None:
            self._peers = dict(read())
        return self._peers

    def applied(self, plan: PeerPlan) -> None:
        """``plan`` was written to the device whole."""
        if self._peers is None:
            return
        for key in plan.remove:
            self._peers.pop(key, None)
        for change in plan.update:
            self._peers[change.peer.public_key] = _kept_endpoint(change.peer, self._peers)
        for peer in plan.add:
            self._peers[peer.public_key] = peer

    def forget(self) -> None:
        self._peers = None


def _kept_endpoint(peer: PeerSpec, known: Mapping[Key, PeerConfig]) -> PeerConfig:
    """``peer`` as the device holds it after the update: a spec without an endpoint
    leaves the device's own (roamed) endpoint in place."""
    before = known.get(peer.public_key)
    if peer.endpoint is not None or before is None or before.endpoint is None:
        return peer
    return PeerSpec(peer.public_key, peer.allowed_ips, before.endpoint, peer.persistent_keepalive)
