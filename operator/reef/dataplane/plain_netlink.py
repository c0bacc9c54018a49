"""Netlink calls made with the standard library only: the early step's three, and the
route dump of a large mesh.

reef.agent.early brings the interface up while the agent's libraries (pyroute2 among
them) are still loading, so it cannot use reef.dataplane.netlink. It needs only: whether
the kernel has the ``wireguard`` generic-netlink family, adding an address to a link, and
setting a link up (with an MTU). Each is one request and its acknowledgement; the
messages are packed here by hand (netlink(7), rtnetlink(7), genetlink).

:func:`route_keys_via` reads the routes of one interface: at 5000 members there are
5000, and pyroute2 makes a message object of ~4 KiB of each (20 MiB at once, which the
agent kept as resident memory after every periodic resync); read here, a route costs
three integers. Everything else the agent does on netlink stays with pyroute2
(reef.dataplane.links).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterable

from reef.dataplane.base import DataplaneError

NETLINK_ROUTE = 0
NETLINK_GENERIC = 16

_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLM_F_DUMP = 0x300
_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLM_F_EXCL = 0x200
_NLM_F_CREATE = 0x400

_GENL_ID_CTRL = 0x10
_CTRL_CMD_GETFAMILY = 3
_CTRL_ATTR_FAMILY_NAME = 2

_RTM_NEWLINK = 16
_RTM_NEWADDR = 20
_RTM_NEWROUTE = 24
_RTM_GETROUTE = 26
_RTA_DST = 1
_RTA_OIF = 4
_IFLA_MTU = 4
_IFA_ADDRESS = 1
_IFA_LOCAL = 2
_IFF_UP = 0x1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
_GENLMSGHDR = struct.Struct("=BBH")  # command, version, reserved
# rtmsg: family, destination and source prefix lengths, tos, table, protocol, scope, type,
# flags
_RTMSG = struct.Struct("=BBBBBBBBI")
_ATTRIBUTE = struct.Struct("=HH")  # length, type
_OIF = struct.Struct("=I")
_ERROR_CODE = struct.Struct("=i")


def _align(length: int) -> int:
    return (length + 3) & ~3


def _attribute(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (_align(length) - length)


class NetlinkAckError(DataplaneError):
    """The kernel refused a request; ``code`` is the errno it answered with."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}: {os.strerror(code)} (errno {code})")
        self.code = code


def _request(protocol: int, kind: int, flags: int, payload: bytes, what: str) -> None:
    """Send one request and read its acknowledgement; raise NetlinkAckError on refusal.

    Replies other than the acknowledgement (CTRL_CMD_GETFAMILY answers with the family)
    are skipped: only whether the kernel accepted the request is used here.
    """
    sequence = 1
    message = (
        _HEADER.pack(
            _HEADER.size + len(payload), kind, flags | _NLM_F_REQUEST | _NLM_F_ACK, sequence, 0
        )
        + payload
    )
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol) as sock:
        sock.settimeout(2.0)  # the kernel answers at once; this only bounds a surprise
        sock.bind((0, 0))
        sock.send(message)
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, reply_kind, _, reply_sequence, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise DataplaneError(f"{what}: malformed netlink reply")
                if reply_kind == _NLMSG_ERROR and reply_sequence == sequence:
                    (code,) = _ERROR_CODE.unpack_from(data, offset + _HEADER.size)
                    if code:
                        raise NetlinkAckError(what, -code)
                    return
                offset += _align(length)


def kernel_has_wireguard() -> bool:
    """Whether the ``wireguard`` generic-netlink family resolves (as reef.dataplane.select
    asks it: the question also makes the kernel load an installed module)."""
    payload = _GENLMSGHDR.pack(_CTRL_CMD_GETFAMILY, 1, 0) + _attribute(
        _CTRL_ATTR_FAMILY_NAME, b"wireguard\0"
    )
    try:
        _request(NETLINK_GENERIC, _GENL_ID_CTRL, 0, payload, "resolve family wireguard")
    except NetlinkAckError:
        return False
    return True


def add_addresses(
    index: int, addresses: Iterable[ipaddress.IPv4Interface | ipaddress.IPv6Interface]
) -> None:
    """Add each address to link ``index`` (an address already there is an error: EEXIST)."""
    for address in addresses:
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        packed = address.ip.packed
        attributes = _attribute(_IFA_ADDRESS, packed)
        if address.version == 4:
            attributes += _attribute(_IFA_LOCAL, packed)  # as ip(8) does for IPv4
        payload = _IFADDRMSG.pack(family, address.network.prefixlen, 0, 0, index) + attributes
        _request(
            NETLINK_ROUTE, _RTM_NEWADDR, _NLM_F_CREATE | _NLM_F_EXCL, payload, f"add {address}"
        )


def set_up(index: int, mtu: int | None = None) -> None:
    """Set link ``index`` up, and its MTU when given."""
    attributes = b"" if mtu is None else _attribute(_IFLA_MTU, struct.pack("=I", mtu))
    payload = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, _IFF_UP, _IFF_UP) + attributes
    _request(NETLINK_ROUTE, _RTM_NEWLINK, 0, payload, f"set link {index} up")


#: A route's destination as three integers: IP version, first address, prefix length.
RouteKey = tuple[int, int, int]


def route_key(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> RouteKey:
    return net.version, int(net.network_address), net.prefixlen


def route_keys_via(index: int, protocol: int) -> set[RouteKey]:
    """The destinations of the routes (IPv4 and IPv6, every table) whose output interface
    is ``index`` and whose protocol number is ``protocol``, as :data:`RouteKey`: one dump
    per family. Three small integers a route, not a network object (~0.5 KiB each: 2.5
    MiB at 5000 routes, on every periodic resync)."""
    found: set[RouteKey] = set()
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        for dst, prefix in _dump_routes(family, index, protocol):
            found.add((version, int.from_bytes(dst or b"", "big"), prefix))
    return found


def network_of(key: RouteKey) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network a :data:`RouteKey` stands for."""
    version, address, prefix = key
    if version == 4:
        return ipaddress.IPv4Network((address, prefix))
    return ipaddress.IPv6Network((address, prefix))


def _dump_routes(family: int, index: int, protocol: int) -> list[tuple[bytes | None, int]]:
    """(destination bytes or None for a default route, prefix length) of each match."""
    sequence = 1
    payload = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    request = (
        _HEADER.pack(
            _HEADER.size + len(payload), _RTM_GETROUTE, _NLM_F_REQUEST | _NLM_F_DUMP, sequence, 0
        )
        + payload
    )
    matches: list[tuple[bytes | None, int]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.settimeout(2.0)  # the kernel answers at once; this only bounds a surprise
        sock.bind((0, 0))
        sock.send(request)
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, reply_sequence, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise DataplaneError("route dump: malformed netlink reply")
                if reply_sequence == sequence:
                    if kind == _NLMSG_DONE:
                        return matches
                    if kind == _NLMSG_ERROR:
                        (code,) = _ERROR_CODE.unpack_from(data, offset + _HEADER.size)
                        raise NetlinkAckError("route dump", -code)
                    if kind == _RTM_NEWROUTE:
                        match = _route_match(data, offset + _HEADER.size, offset + length, index)
                        if match is not None and match[2] == protocol:
                            matches.append((match[0], match[1]))
                offset += _align(length)


def _route_match(
    data: bytes, start: int, end: int, index: int
) -> tuple[bytes | None, int, int] | None:
    """(destination, prefix length, protocol) of the route message in ``data[start:end]``
    when its output interface is ``index``; else None."""
    _, prefix, _, _, _, protocol, _, _, _ = _RTMSG.unpack_from(data, start)
    offset = start + _RTMSG.size
    destination: bytes | None = None
    oif: int | None = None
    while offset + _ATTRIBUTE.size <= end:
        length, kind = _ATTRIBUTE.unpack_from(data, offset)
        if length < _ATTRIBUTE.size:
            break
        value = offset + _ATTRIBUTE.size
        if kind == _RTA_DST:
            destination = bytes(data[value : offset + length])
        elif kind == _RTA_OIF:
            (oif,) = _OIF.unpack_from(data, value)
        offset += _align(length)
    return (destination, prefix, protocol) if oif == index else None
