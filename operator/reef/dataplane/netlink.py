"""The few pyroute2 classes reef uses, imported without ``pyroute2/__init__``.

That package file imports nearly all of pyroute2 (NDB, IPDB, nftables, ipset, nl80211,
ethtool, ...); reef needs the rtnetlink socket, the WireGuard generic-netlink family and
the netlink error (see reef.leanimport).
"""

from __future__ import annotations

from reef.leanimport import import_skipping_package_init

_exceptions, _generic, _wireguard, _iproute = import_skipping_package_init(
    ["pyroute2"],
    [
        "pyroute2.netlink.exceptions",
        "pyroute2.netlink.generic",
        "pyroute2.netlink.generic.wireguard",
        "pyroute2.iproute.linux",
    ],
)

NetlinkError = _exceptions.NetlinkError
GenericNetlinkSocket = _generic.GenericNetlinkSocket
WireGuard = _wireguard.WireGuard
IPRoute = _iproute.IPRoute

__all__ = ["GenericNetlinkSocket", "IPRoute", "NetlinkError", "WireGuard"]
