"""Userspace backend: wireguard-go, driven over its UAPI socket.

Used where the kernel has no wireguard module. The agent starts
``wireguard-go -f <if>`` itself (reef.dataplane.wireguard_go), is handed the one
its early step started (:meth:`UserspaceBackend.adopt`), or adopts one that
already answers on ``/var/run/wireguard/<if>.sock`` — an agent restart must not
recreate the interface and cut traffic.

Peers are written as one ``set`` request carrying only the difference
(removals, ``update_only`` updates, additions). ``replace_peers=true`` would
make the request self-contained too, but wireguard-go implements it as
"remove every peer, then add", which drops every session and forces a
re-handshake with the whole mesh on each change.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from reef.dataplane import links, uapi
from reef.dataplane import wireguard_go as go_process
from reef.dataplane.base import BackendKind, DataplaneError
from reef.dataplane.diff import KnownPeers, PeerConfig, PeerPlan, diff_peers
from reef.dataplane.keys import Key
from reef.dataplane.netlink import IPRoute
from reef.dataplane.spec import DeviceSpec, DeviceState, PeerLiveness, PeerSpec
from reef.dataplane.waiting import wait_for_exit

log = logging.getLogger(__name__)

SOCKET_DIR = go_process.SOCKET_DIR


class UserspaceBackend:
    """One wireguard-go interface. Not thread-safe; one agent owns it."""

    kind: BackendKind = "userspace"

    def __init__(
        self,
        ifname: str,
        *,
        wireguard_go: str = "wireguard-go",
        socket_dir: Path = SOCKET_DIR,
        start_timeout: float = 10.0,
        request_timeout: float = 10.0,
        log_level: str = "error",
    ) -> None:
        if not 0 < len(ifname) <= 15:
            raise ValueError(f"interface name must be 1..15 characters, got {ifname!r}")
        self.ifname = ifname
        self.wireguard_go = wireguard_go
        self.socket_path = go_process.socket_path(socket_dir, ifname)
        self.log_path = go_process.log_path(socket_dir, ifname)
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None
        self.ipr = IPRoute()
        self.routes = links.RouteSync()
        #: What the device holds, read once and then kept as written (KnownPeers).
        self.known = KnownPeers()

    # --- UAPI transport -------------------------------------------------

    def request(self, payload: bytes) -> uapi.UapiResponse:
        """Send one request on a fresh connection and return the decoded answer."""
        return uapi.decode_response(self.exchange(payload))

    def exchange(self, payload: bytes) -> bytes:
        """Send one request on a fresh connection and return the answer undecoded."""
        return self.exchange_pieces((payload,))

    def exchange_pieces(self, pieces: Iterable[bytes]) -> bytes:
        """:meth:`exchange` of a request made piece by piece while it is sent."""
        return go_process.exchange(self.socket_path, pieces, self.request_timeout)

    def alive(self) -> bool:
        """Whether a wireguard-go answers on this interface's UAPI socket."""
        try:
            uapi.check_answer(self.exchange(uapi.GET_REQUEST))
        except (DataplaneError, uapi.UapiError):
            return False
        return True

    # --- process supervision --------------------------------------------

    def _start(self) -> None:
        self.process = go_process.spawn(
            self.ifname,
            binary=self.wireguard_go,
            socket_dir=self.socket_path.parent,
            log_level=self.log_level,
        )
        log.info("started wireguard-go pid %d for %s", self.process.pid, self.ifname)
        self._await_listener(self.process)

    def _await_listener(self, process: subprocess.Popen[bytes]) -> None:
        go_process.await_listener(process, self.ifname, self.socket_path.parent, self.start_timeout)

    def adopt(self, process: subprocess.Popen[bytes]) -> None:
        """Supervise a wireguard-go started for this interface before the backend existed
        (reef.agent.early); it may still be starting."""
        self.process = process

    # --- Backend ----------------------------------------------------------

    def ensure_interface(self, spec: DeviceSpec) -> None:
        # A (re)configuration, the periodic resync's too, reads the peers anew.
        self.known.forget()
        if not self.alive():
            if self.process is not None and self.process.poll() is None:
                # Ours and running, so starting (handed over by adopt): it will answer.
                self._await_listener(self.process)
            else:
                index = links.link_index(self.ipr, self.ifname)
                if index is not None:
                    kind = links.link_kind(self.ipr, index)
                    raise DataplaneError(
                        f"interface {self.ifname} exists (kind {kind!r}) but no wireguard-go"
                        f" answers on {self.socket_path}; delete it or configure another"
                        " interface name"
                    )
                self._start()
        state = uapi.decode_device_answer(self.exchange(uapi.GET_REQUEST), with_peers=False)
        lines = uapi.device_lines(
            spec.private_key if state.public_key != spec.private_key.public_key() else None,
            spec.listen_port if state.listen_port != spec.listen_port else None,
        )
        if lines:
            self.request(uapi.encode_set(lines)).check()
        index = links.require_index(self.ipr, self.ifname)
        # Configuring is when the agent re-checks the interface: read its routes anew.
        self.routes.forget()
        links.configure_link(self.ipr, index, spec.addresses, spec.mtu)
        if spec.peers is not None:
            self.apply_peers(spec.peers)

    def apply_peers(self, desired: Sequence[PeerSpec]) -> PeerPlan:
        plan = diff_peers(desired, self.known.get(lambda: self._read_against(desired)))
        if not plan.empty:
            pieces = uapi.set_request_chunks(uapi.iter_plan_lines(plan))
            try:
                uapi.decode_response(self.exchange_pieces(pieces)).check()
            except BaseException:
                self.known.forget()  # how much of it the device took is unknown
                raise
            self.known.applied(plan)
        index = links.require_index(self.ipr, self.ifname)
        self.routes.sync(self.ipr, index, (net for peer in desired for net in peer.allowed_ips))
        return plan

    def _read_against(self, desired: Sequence[PeerSpec]) -> dict[Key, PeerConfig]:
        """The device's peers for a diff with ``desired``, decoding only those that differ."""
        expected = {peer.public_key.raw: peer for peer in desired}
        return uapi.decode_peer_configs(self.exchange(uapi.GET_REQUEST), expected)

    def read_state(self) -> DeviceState:
        return uapi.decode_device_answer(self.exchange(uapi.GET_REQUEST))

    def read_liveness(self) -> PeerLiveness:
        return uapi.decode_liveness(self.exchange(uapi.GET_REQUEST))

    def remove_interface(self) -> None:
        self.routes.forget()
        self.known.forget()
        # wireguard-go exits by itself once its TUN is gone; deleting the link
        # works for an adopted process we have no handle on.
        links.delete_link(self.ipr, self.ifname)
        if self.process is not None:
            if not wait_for_exit(self.process.pid, self.start_timeout):
                self.process.terminate()
            self.process.wait(self.start_timeout)
            self.process = None
        self.socket_path.unlink(missing_ok=True)
        self.log_path.unlink(missing_ok=True)

    def close(self) -> None:
        self.ipr.close()
