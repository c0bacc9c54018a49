"""Network-namespace "nodes" on one L2 segment, for real WireGuard tests.

Each node is a network namespace with an ``eth0`` veth whose other end sits
on a bridge in a per-run hub namespace, addressed from the test-only range
198.18.0.0/15 (RFC 2544). Nothing is attached to the host's own namespace,
so traffic can only ever reach these nodes.

Names carry a random token per run (``reef-<tok>-<node>``) so parallel runs
never collide. ``/var/run/wireguard`` is shared by all namespaces, so every
node also gets its own WireGuard interface name, :attr:`Node.wg_ifname`.

Cleanup on exit: processes started through :meth:`Node.popen` are stopped by
PID, then any process still inside one of *our* namespaces (e.g. a
wireguard-go a node started) is stopped by PID, the node's files in
/var/run/wireguard are removed, then the namespaces are deleted, which
deletes their links. The calling process becomes a child subreaper, so a
daemon a node started (and whose starter exited) is reaped, not left a zombie.

Usage::

    with netns_nodes(["a", "b"]) as lab:
        lab["a"].run("ping", "-c1", "-W2", str(lab["b"].underlay.ip))
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import secrets
import select
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

UNDERLAY = ipaddress.ip_network("198.18.0.0/24")
_STOP_TIMEOUT = 10.0
_PR_SET_CHILD_SUBREAPER = 36
WIREGUARD_RUN_DIR = Path("/var/run/wireguard")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


def _in_netns(netns: str, make: Callable[[], _T]) -> _T:
    """``make()`` run on a short-lived thread inside network namespace ``netns``.

    A socket belongs to the namespace it was created in, and ``setns`` changes only the
    calling thread's: the thread enters ``netns``, makes the socket and ends, so the test
    process itself never leaves the host namespace. (Not pyroute2's ``netns=``: it forks
    the whole test process, and a SIGTERM reaching that copy — which pytest's handlers
    turn into KeyboardInterrupt — runs the copy's fixture teardowns: it stopped the
    control plane under a running test.)
    """
    result: dict[str, Any] = {}

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                result["error"] = OSError(errno, f"setns into {netns}: {os.strerror(errno)}")
                return
            result["value"] = make()
        except OSError as error:
            result["error"] = error
        finally:
            os.close(fd)

    thread = threading.Thread(target=run, name=f"in-{netns}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    value: _T = result["value"]
    return value


def connect_in(netns: str, address: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP connection made from inside network namespace ``netns``."""
    return _in_netns(netns, lambda: socket.create_connection(address, timeout=timeout))


_RTMGRP_LINK = 1
_RTM_DELLINK = 17
_IFLA_IFNAME = 3
_NLMSG_HEADER = struct.Struct("=IHHII")
_IFINFOMSG_SIZE = 16
_RTATTR_HEADER = struct.Struct("=HH")


def deleted_link_names(data: bytes) -> list[str]:
    """Interface names of the RTM_DELLINK messages in one rtnetlink datagram."""
    names: list[str] = []
    offset = 0
    while offset + _NLMSG_HEADER.size <= len(data):
        length, kind, _, _, _ = _NLMSG_HEADER.unpack_from(data, offset)
        if length < _NLMSG_HEADER.size:
            break
        if kind == _RTM_DELLINK:
            attr = offset + _NLMSG_HEADER.size + _IFINFOMSG_SIZE
            while attr + _RTATTR_HEADER.size <= offset + length:
                attr_length, attr_type = _RTATTR_HEADER.unpack_from(data, attr)
                if attr_length < _RTATTR_HEADER.size:
                    break
                if attr_type == _IFLA_IFNAME:
                    raw = data[attr + _RTATTR_HEADER.size : attr + attr_length]
                    names.append(raw.rstrip(b"\0").decode())
                attr += (attr_length + 3) & ~3
        offset += (length + 3) & ~3
    return names


_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_ROUTE = 0x400
_RTM_NEWROUTE = 24
_RTM_DELROUTE = 25
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA_DST = 1
_RTA_OIF = 4


def route_changes(data: bytes) -> list[tuple[bool, str, int | None]]:
    """(added?, destination CIDR, output ifindex) of each route message in one datagram."""
    changes: list[tuple[bool, str, int | None]] = []
    offset = 0
    while offset + _NLMSG_HEADER.size <= len(data):
        length, kind, _, _, _ = _NLMSG_HEADER.unpack_from(data, offset)
        if length < _NLMSG_HEADER.size:
            break
        if kind in (_RTM_NEWROUTE, _RTM_DELROUTE):
            family, dst_len, *_ = _RTMSG.unpack_from(data, offset + _NLMSG_HEADER.size)
            destination = "0.0.0.0" if family == socket.AF_INET else "::"
            oif: int | None = None
            attr = offset + _NLMSG_HEADER.size + _RTMSG.size
            while attr + _RTATTR_HEADER.size <= offset + length:
                attr_length, attr_type = _RTATTR_HEADER.unpack_from(data, attr)
                if attr_length < _RTATTR_HEADER.size:
                    break
                value = data[attr + _RTATTR_HEADER.size : attr + attr_length]
                if attr_type == _RTA_DST:
                    destination = socket.inet_ntop(family, value)
                elif attr_type == _RTA_OIF:
                    (oif,) = struct.unpack("=I", value[:4])
                attr += (attr_length + 3) & ~3
            changes.append((kind == _RTM_NEWROUTE, f"{destination}/{dst_len}", oif))
        offset += (length + 3) & ~3
    return changes


def route_watch(netns: str) -> socket.socket:
    """A socket subscribed to ``netns``'s IPv4 and IPv6 route events (check state after
    this, with another socket, so that no change falls between the two)."""

    def subscribe() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.bind((0, _RTMGRP_IPV4_ROUTE | _RTMGRP_IPV6_ROUTE))
        return sock

    return _in_netns(netns, subscribe)


def link_watch(netns: str, ifname: str) -> tuple[socket.socket, bool]:
    """A socket subscribed to ``netns``'s link events, and whether ``ifname`` exists —
    checked *after* subscribing, so a deletion is either seen here or arrives as an event."""

    def subscribe_then_check() -> tuple[socket.socket, bool]:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.bind((0, _RTMGRP_LINK))
        try:
            socket.if_nametoindex(ifname)
        except OSError:
            return sock, False
        return sock, True

    return _in_netns(netns, subscribe_then_check)


def _become_subreaper() -> None:
    """Orphans of our descendants (a wireguard-go whose starter exited) become
    our children, so they can be reaped instead of lingering as zombies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _stop(pid: int) -> None:
    """SIGTERM, wait, SIGKILL, reap: only for a PID we started or that runs in our netns."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not select.select([pidfd], [], [], _STOP_TIMEOUT)[0]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            select.select([pidfd], [], [], _STOP_TIMEOUT)
    finally:
        os.close(pidfd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class Node:
    """One namespace "node": its names, its underlay address, its processes."""

    name: str
    netns: str
    wg_ifname: str
    underlay: ipaddress.IPv4Interface
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def argv(self, *cmd: str) -> list[str]:
        """``cmd`` wrapped to run inside this node's namespace."""
        return ["ip", "netns", "exec", self.netns, *cmd]

    def run(
        self,
        *cmd: str,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the node to completion; output captured as text."""
        result = subprocess.run(
            self.argv(*cmd),
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} in node {self.name} exited {result.returncode}:\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def popen(self, *cmd: str, log_path: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in the node; it is stopped (by PID) when the lab closes."""
        log = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
        try:
            process = subprocess.Popen(
                self.argv(*cmd), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            if log_path is not None and not isinstance(log, int):
                log.close()
        self._processes.append(process)
        return process

    def pids(self) -> list[int]:
        """PIDs of every process currently inside this node's namespace."""
        out = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]

    def stop_processes(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                _stop(process.pid)
            process.wait()
        self._processes.clear()
        for pid in self.pids():
            _stop(pid)
        # wireguard-go's socket and the log reef's userspace backend writes beside it.
        for suffix in (".sock", ".log"):
            (WIREGUARD_RUN_DIR / f"{self.wg_ifname}{suffix}").unlink(missing_ok=True)


@dataclass
class Lab:
    """The nodes of one run, by name, plus the hub namespace holding the bridge."""

    token: str
    hub: str
    nodes: dict[str, Node]

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())


def _wg_ifname(token: str, name: str) -> str:
    ifname = f"wg{token}{name}"
    if len(ifname) > 15:
        raise ValueError(f"node name {name!r} too long: interface {ifname!r} exceeds 15 chars")
    return ifname


@contextlib.contextmanager
def netns_nodes(names: Sequence[str] = ("a", "b")) -> Iterator[Lab]:
    """Create one namespace node per name on a shared bridge; remove all on exit."""
    if len(names) > UNDERLAY.num_addresses - 3:
        raise ValueError(f"at most {UNDERLAY.num_addresses - 3} nodes fit in {UNDERLAY}")
    _become_subreaper()
    token = secrets.token_hex(2)
    # A "." cannot collide with a node's namespace, reef-<token>-<name> (even name "hub").
    hub = f"reef-{token}.bridge"
    hosts = UNDERLAY.hosts()
    lab = Lab(token, hub, {})
    created: list[str] = []
    try:
        _ip("netns", "add", hub)
        created.append(hub)
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "link", "set", "br0", "up")
        for name in names:
            node = Node(
                name=name,
                netns=f"reef-{token}-{name}",
                wg_ifname=_wg_ifname(token, name),
                underlay=ipaddress.IPv4Interface(f"{next(hosts)}/{UNDERLAY.prefixlen}"),
            )
            _ip("netns", "add", node.netns)
            created.append(node.netns)
            lab.nodes[name] = node
            port = f"v-{name}"
            _ip("-n", hub, "link", "add", port, "type", "veth", "peer", "eth0", "netns", node.netns)
            _ip("-n", hub, "link", "set", port, "master", "br0", "up")
            _ip("-n", node.netns, "addr", "add", str(node.underlay), "dev", "eth0")
            _ip("-n", node.netns, "link", "set", "eth0", "up")
            _ip("-n", node.netns, "link", "set", "lo", "up")
        yield lab
    finally:
        for node in lab:
            node.stop_processes()
        for netns in reversed(created):
            subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
