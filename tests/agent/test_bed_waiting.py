"""The bed's own wait helpers must not miss what they wait for (a missed event = a flake)."""

from __future__ import annotations

import os
import subprocess

import pytest
from pyroute2 import IPRoute

from tests.agent import bed
from tests.agent.bed import wait_for_link_gone
from tests.testbed.netns import netns_nodes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespace nodes need root")


def test_a_link_deleted_right_after_the_existence_check_is_still_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race that failed CI once: the agent removed its interface between the helper's
    "does it exist?" and the moment it started listening for the deletion."""
    with netns_nodes(["w"]) as lab:
        node = lab["w"]
        node.run("ip", "link", "add", "gone0", "type", "veth", "peer", "name", "gone1")
        exists = bed._link_exists

        def check_then_delete(netlink: IPRoute, ifname: str) -> bool:
            found = exists(netlink, ifname)
            # The deletion lands exactly in the gap, every time, instead of once in a while.
            subprocess.run(["ip", "-n", node.netns, "link", "del", ifname], check=True)
            return found

        monkeypatch.setattr(bed, "_link_exists", check_then_delete)
        wait_for_link_gone(node, "gone0", timeout=10)


def test_a_link_that_stays_is_reported_after_the_deadline() -> None:
    with netns_nodes(["s"]) as lab:
        node = lab["s"]
        node.run("ip", "link", "add", "stay0", "type", "veth", "peer", "name", "stay1")
        with pytest.raises(AssertionError, match="stay0 still exists"):
            wait_for_link_gone(node, "stay0", timeout=0.5)


def test_a_link_that_never_existed_returns_at_once() -> None:
    with netns_nodes(["n"]) as lab:
        wait_for_link_gone(lab["n"], "absent0", timeout=0.5)
