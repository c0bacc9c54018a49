"""Userspace backend: wireguard-go, driven over its UAPI socket.

Used where the kernel has no wireguard module. The agent starts
``wireguard-go -f <if>`` itself (foreground, so it is a real child it can
supervise) or adopts one that already answers on
``/var/run/wireguard/<if>.sock`` — an agent restart must not recreate the
interface and cut traffic. wireguard-go runs in its own session with output to
a log file, so it outlives the agent process (a pipe to a dead agent would
kill it with SIGPIPE).

Peers are written as one ``set`` request carrying only the difference
(removals, ``update_only`` updates, additions). ``replace_peers=true`` would
make the request self-contained too, but wireguard-go implements it as
"remove every peer, then add", which drops every session and forces a
re-handshake with the whole mesh on each change.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from reef.dataplane import links, uapi
from reef.dataplane.base import BackendKind, DataplaneError
from reef.dataplane.diff import PeerPlan, diff_peers
from reef.dataplane.netlink import IPRoute
from reef.dataplane.spec import DeviceSpec, DeviceState, PeerLiveness, PeerSpec
from reef.dataplane.waiting import (
    ProcessExitedError,
    WaitTimeoutError,
    wait_for_exit,
    wait_for_listener,
)

log = logging.getLogger(__name__)

SOCKET_DIR = Path("/var/run/wireguard")


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
        self.socket_path = socket_dir / f"{ifname}.sock"
        self.log_path = socket_dir / f"{ifname}.log"
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None
        self.ipr = IPRoute()
        self.routes = links.RouteSync()

    # --- UAPI transport -------------------------------------------------

    def request(self, payload: bytes) -> uapi.UapiResponse:
        """Send one request on a fresh connection and return the decoded answer."""
        return uapi.decode_response(self.exchange(payload))

    def exchange(self, payload: bytes) -> bytes:
        """Send one request on a fresh connection and return the answer undecoded."""
        return self.exchange_pieces((payload,))

    def exchange_pieces(self, pieces: Iterable[bytes]) -> bytes:
        """:meth:`exchange` of a request made piece by piece while it is sent."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.request_timeout)
            try:
                sock.connect(str(self.socket_path))
                for piece in pieces:
                    sock.sendall(piece)
                buffer = bytearray()  # appended in place: a 5000-peer answer is ~1.5 MB
                while not uapi.response_complete(buffer):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise uapi.UapiError(f"{self.socket_path} closed the connection mid-answer")
                    buffer += chunk
            except OSError as exc:
                raise DataplaneError(
                    f"cannot talk to wireguard-go on {self.socket_path}: {exc}"
                ) from exc
        return bytes(buffer)

    def alive(self) -> bool:
        """Whether a wireguard-go answers on this interface's UAPI socket."""
        try:
            uapi.check_answer(self.exchange(uapi.GET_REQUEST))
        except (DataplaneError, uapi.UapiError):
            return False
        return True

    # --- process supervision --------------------------------------------

    def _start(self) -> None:
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.process is not None and self.process.poll() is None:
            raise DataplaneError(
                f"wireguard-go pid {self.process.pid} runs but {self.socket_path} does not answer;"
                f" check its log at {self.log_path}"
            )
        # A socket file without a listener (wireguard-go was killed hard) would
        # make wireguard-go refuse to start.
        self.socket_path.unlink(missing_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [self.wireguard_go, "-f", self.ifname],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "LOG_LEVEL": self.log_level},
            )
        log.info("started wireguard-go pid %d for %s", self.process.pid, self.ifname)
        try:
            wait_for_listener(self.socket_path, self.start_timeout, pid=self.process.pid)
        except ProcessExitedError as exc:
            code = self.process.wait()
            raise DataplaneError(
                f"wireguard-go for {self.ifname} exited with code {code} before its UAPI"
                f" socket appeared; see {self.log_path} (is /dev/net/tun available?)"
            ) from exc
        except WaitTimeoutError as exc:
            raise DataplaneError(
                f"wireguard-go for {self.ifname} created no UAPI socket within"
                f" {self.start_timeout} s; see {self.log_path}"
            ) from exc

    # --- Backend ----------------------------------------------------------

    def ensure_interface(self, spec: DeviceSpec) -> None:
        if not self.alive():
            index = links.link_index(self.ipr, self.ifname)
            if index is not None:
                kind = links.link_kind(self.ipr, index)
                raise DataplaneError(
                    f"interface {self.ifname} exists (kind {kind!r}) but no wireguard-go answers"
                    f" on {self.socket_path}; delete it or configure another interface name"
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
        plan = diff_peers(desired, self.read_state().peers)
        if not plan.empty:
            pieces = uapi.set_request_chunks(uapi.iter_plan_lines(plan))
            uapi.decode_response(self.exchange_pieces(pieces)).check()
        index = links.require_index(self.ipr, self.ifname)
        self.routes.sync(self.ipr, index, (net for peer in desired for net in peer.allowed_ips))
        return plan

    def read_state(self) -> DeviceState:
        return uapi.decode_device_answer(self.exchange(uapi.GET_REQUEST))

    def read_liveness(self) -> PeerLiveness:
        return uapi.decode_liveness(self.exchange(uapi.GET_REQUEST))

    def remove_interface(self) -> None:
        self.routes.forget()
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
