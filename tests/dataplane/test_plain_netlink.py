"""The standard-library netlink calls (the early step's, the route dump) agree with
pyroute2's answers."""

from __future__ import annotations

import json
import sys

import pytest

from reef.dataplane import links, plain_netlink
from reef.dataplane.select import kernel_wireguard_available
from tests.testbed.netns import Lab


def test_the_wireguard_family_probe_answers_as_the_backend_selection_does() -> None:
    # Both ask CTRL_CMD_GETFAMILY; on this machine (no module) both say no, in the VM yes.
    assert plain_netlink.kernel_has_wireguard() == kernel_wireguard_available()[0]


def test_a_refused_request_says_which_errno() -> None:
    with pytest.raises(plain_netlink.NetlinkAckError) as refused:
        plain_netlink.set_up(2**31 - 1)  # no such link
    assert refused.value.code == 19  # ENODEV


ROUTES_BY_BOTH = """
import ipaddress, json, sys
from reef.dataplane import links, plain_netlink
from reef.dataplane.netlink import IPRoute

ipr = IPRoute()
index = links.link_index(ipr, sys.argv[1])
by_pyroute2 = set()
for family in (2, 10):
    for route in ipr.get_routes(family=family, oif=index, proto=links.REEF_ROUTE_PROTO):
        dst = route.get("RTA_DST") or ("0.0.0.0" if family == 2 else "::")
        by_pyroute2.add(f"{dst}/{route['dst_len']}")
keys = plain_netlink.route_keys_via(index, links.REEF_ROUTE_PROTO)
read_plainly = {str(plain_netlink.network_of(key)) for key in keys}
print(json.dumps([sorted(by_pyroute2), sorted(read_plainly)]))
"""


@pytest.mark.netns
def test_the_route_dump_finds_what_pyroute2_finds_and_nothing_else(lab_of_two: Lab) -> None:
    """reef's routes via one interface, read without pyroute2's message objects: the same
    set as pyroute2's filtered dump, past one netlink read (1500 routes), IPv4 and IPv6,
    a default route; another interface's and another protocol's routes left out."""
    node = lab_of_two["a"]
    proto = str(links.REEF_ROUTE_PROTO)
    setup = [
        "link add rt0 type veth peer name rt0p",
        "link add rt1 type veth peer name rt1p",
        *(f"link set {name} up" for name in ("rt0", "rt0p", "rt1", "rt1p")),
        *(f"route add 100.64.{i // 250}.{i % 250}/32 dev rt0 proto {proto}" for i in range(1500)),
        f"route add 100.65.0.0/24 dev rt1 proto {proto}",
        "route add 100.66.0.0/24 dev rt0 proto 4",
        f"route add default dev rt0 proto {proto} metric 999",
        "addr add fd00::1/64 dev rt0 nodad",
        f"route add fd01::/64 dev rt0 proto {proto}",
    ]
    node.run("ip", "-batch", "-", input="\n".join(setup) + "\n")
    answer = node.run(sys.executable, "-c", ROUTES_BY_BOTH, "rt0").stdout
    by_pyroute2, read_plainly = json.loads(answer)
    assert read_plainly == by_pyroute2
    assert len(read_plainly) == 1502
    assert {"0.0.0.0/0", "fd01::/64"} <= set(read_plainly)
    assert not {"100.65.0.0/24", "100.66.0.0/24"} & set(read_plainly)
