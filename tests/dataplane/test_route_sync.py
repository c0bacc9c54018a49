"""RouteSync: after one read of the kernel, a change writes only its difference.

A fake rtnetlink socket and route reader stand in for the kernel (this is the
bookkeeping; the routes themselves are checked on real interfaces in test_userspace_mesh
and the agent tests).
"""

from __future__ import annotations

import errno
import ipaddress
from typing import Any

import pytest

from reef.dataplane.links import REEF_ROUTE_PROTO, RouteSync
from reef.dataplane.netlink import NetlinkError
from reef.dataplane.plain_netlink import RouteKey, route_key
from reef.dataplane.spec import IPNetwork

INDEX = 7


def nets(*texts: str) -> list[IPNetwork]:
    return [ipaddress.ip_network(text) for text in texts]


class FakeKernel:
    """Routes and addresses of one interface, and a log of every netlink call made."""

    def __init__(self, routes: list[IPNetwork], addresses: list[str]) -> None:
        self.routes = set(routes)
        self.addresses = addresses
        self.calls: list[str] = []

    def get_addr(self, index: int) -> list[dict[str, Any]]:
        self.calls.append("dump addresses")
        return [
            _Message(IFA_ADDRESS=text.split("/")[0], prefixlen=int(text.split("/")[1]))
            for text in self.addresses
        ]

    def route_keys_via(self, index: int, proto: int) -> set[RouteKey]:
        """What plain_netlink.route_keys_via reads: a dump per family (AF_INET, AF_INET6)."""
        assert proto == REEF_ROUTE_PROTO
        self.calls += ["dump routes 2", "dump routes 10"]
        return {route_key(net) for net in self.routes}

    def route(self, command: str, dst: str, oif: int, proto: int, scope: int) -> None:
        net = ipaddress.ip_network(dst)
        self.calls.append(f"{command} {net}")
        if command == "replace":
            self.routes.add(net)
        elif net in self.routes:
            self.routes.remove(net)
        else:
            raise NetlinkError(errno.ESRCH, "No such process")


class _Message(dict[str, Any]):
    def __init__(self, **fields: Any) -> None:
        super().__init__(fields)


def sync(routes: RouteSync, kernel: FakeKernel, wanted: list[IPNetwork]) -> list[str]:
    kernel.calls.clear()
    routes.sync(kernel, INDEX, wanted)
    return kernel.calls


def test_the_first_sync_reads_the_kernel_and_removes_stale_routes() -> None:
    kernel = FakeKernel(nets("10.0.0.9/32", "fd00::9/128"), ["10.0.0.1/32"])
    calls = sync(RouteSync(kernel.route_keys_via), kernel, nets("10.0.0.2/32"))
    assert calls[:3] == ["dump addresses", "dump routes 2", "dump routes 10"]
    assert kernel.routes == set(nets("10.0.0.2/32"))


def test_a_joining_peer_costs_one_route_write_and_no_dump() -> None:
    kernel = FakeKernel([], ["10.0.0.1/32"])
    routes = RouteSync(kernel.route_keys_via)
    members = nets(*(f"10.0.0.{n}/32" for n in range(2, 30)))
    sync(routes, kernel, members)
    calls = sync(routes, kernel, [*members, *nets("10.0.0.30/32")])
    assert calls == ["replace 10.0.0.30/32"]
    calls = sync(routes, kernel, members[1:])
    assert calls == ["del 10.0.0.2/32", "del 10.0.0.30/32"]
    assert kernel.routes == set(members[1:])
    assert sync(routes, kernel, members[1:]) == []


def test_networks_already_on_link_get_no_route() -> None:
    kernel = FakeKernel([], ["10.0.0.1/24"])
    sync(RouteSync(kernel.route_keys_via), kernel, nets("10.0.0.5/32", "10.1.0.0/16"))
    assert kernel.routes == set(nets("10.1.0.0/16"))


def test_forget_makes_the_next_sync_read_the_kernel_again() -> None:
    kernel = FakeKernel([], ["10.0.0.1/32"])
    routes = RouteSync(kernel.route_keys_via)
    sync(routes, kernel, nets("10.0.0.2/32"))
    kernel.routes.clear()  # someone flushed the routes behind our back
    assert sync(routes, kernel, nets("10.0.0.2/32")) == []  # memory trusts itself
    routes.forget()
    calls = sync(routes, kernel, nets("10.0.0.2/32"))
    assert "dump routes 2" in calls
    assert calls[-1] == "replace 10.0.0.2/32"
    assert kernel.routes == set(nets("10.0.0.2/32"))


def test_a_new_interface_index_is_read_afresh() -> None:
    kernel = FakeKernel([], ["10.0.0.1/32"])
    routes = RouteSync(kernel.route_keys_via)
    sync(routes, kernel, nets("10.0.0.2/32"))
    kernel.calls.clear()
    routes.sync(kernel, INDEX + 1, nets("10.0.0.2/32"))
    assert kernel.calls[0] == "dump addresses"


def test_a_route_removed_behind_our_back_is_reread_not_fatal() -> None:
    kernel = FakeKernel([], ["10.0.0.1/32"])
    routes = RouteSync(kernel.route_keys_via)
    sync(routes, kernel, nets("10.0.0.2/32", "10.0.0.3/32"))
    kernel.routes.discard(ipaddress.ip_network("10.0.0.2/32"))
    calls = sync(routes, kernel, nets("10.0.0.3/32", "10.0.0.4/32"))
    # The delete of the vanished route fails (ESRCH); the kernel is read and synced again.
    assert "dump routes 2" in calls
    assert kernel.routes == set(nets("10.0.0.3/32", "10.0.0.4/32"))
    assert sync(routes, kernel, nets("10.0.0.3/32", "10.0.0.4/32")) == []


def test_an_error_that_persists_after_the_reread_is_raised() -> None:
    kernel = FakeKernel([], ["10.0.0.1/32"])

    def refuse(command: str, dst: str, oif: int, proto: int, scope: int) -> None:
        raise NetlinkError(errno.EINVAL, "Invalid argument")

    kernel.route = refuse  # type: ignore[method-assign]
    with pytest.raises(NetlinkError):
        sync(RouteSync(kernel.route_keys_via), kernel, nets("10.0.0.2/32"))


def test_after_a_read_the_known_routes_are_the_callers_objects_not_parsed_copies() -> None:
    # At 5000 routes the parsed copies were 2.5 MiB kept until the next read, and each
    # periodic resync left the agent's resident memory a step higher.
    members = nets(*(f"10.0.0.{n}/32" for n in range(2, 30)))
    kernel = FakeKernel(nets(*(f"10.0.0.{n}/32" for n in range(2, 30)), "10.9.0.0/16"), [])
    routes = RouteSync(kernel.route_keys_via)
    calls = sync(routes, kernel, members)
    assert calls[-1:] == ["del 10.9.0.0/16"]  # the unwanted one read is still removed
    kept = {id(net) for net in routes._routes}
    assert kept == {id(net) for net in members}
