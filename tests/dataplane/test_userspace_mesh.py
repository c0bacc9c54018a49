"""Userspace backend (wireguard-go) on real namespace nodes: real handshakes, real pings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dataplane.meshbed import configure_full_mesh, drive, mesh_nodes, peer_state, ping
from tests.testbed.netns import Lab

pytestmark = pytest.mark.netns

BACKEND = "userspace"


def test_two_nodes_ping_each_other_over_wireguard_and_record_a_handshake(lab: Lab) -> None:
    mesh = mesh_nodes(lab)
    configure_full_mesh(mesh, BACKEND)
    a, b = mesh["a"], mesh["b"]
    ping(a, b)
    ping(b, a)
    seen = peer_state(a, BACKEND, b)
    assert seen["last_handshake"] is not None
    assert seen["rx_bytes"] > 0
    assert seen["tx_bytes"] > 0
    # wg(8) agrees: the interface is a real WireGuard device with a handshake.
    output = a.node.run("wg", "show", a.node.wg_ifname, "latest-handshakes").stdout
    handshakes = dict(line.split("\t") for line in output.splitlines())
    assert handshakes[b.key.public_key().base64()] != "0"
    # The health check's read (read_liveness) agrees with the whole state, and took
    # wireguard-go's answer by its fast path (its line order is the one assumed).
    both = drive(a.node, BACKEND, "liveness")
    assert both["fast_path_blocks"] == len(both["state"]) == len(mesh) - 1
    assert both["liveness"].keys() == both["state"].keys()
    for key, (handshake, rx) in both["liveness"].items():
        assert handshake == pytest.approx(both["state"][key][0], abs=1e-6, rel=0)
        assert rx <= both["state"][key][1]
    assert both["liveness"][b.key.public_key().base64()][1] > 0


def test_ensuring_a_configured_interface_again_does_not_recreate_it(lab: Lab) -> None:
    mesh = mesh_nodes(lab)
    first = configure_full_mesh(mesh, BACKEND)
    a, b = mesh["a"], mesh["b"]
    ping(a, b)
    wireguard_go_pids = a.node.pids()
    # A new driver process = a restarted agent: it must adopt, not recreate.
    again = drive(a.node, BACKEND, "ensure", a.device_json(peers=None))
    assert again["ifindex"] == first["a"]
    assert a.node.pids() == wireguard_go_pids
    assert peer_state(a, BACKEND, b)["last_handshake"] is not None, "peers were dropped"
    ping(a, b)


def test_a_handed_over_wireguard_go_that_is_still_starting_is_awaited_not_doubled(
    lab: Lab,
) -> None:
    mesh = mesh_nodes(lab)
    a = mesh["a"]
    done = drive(a.node, BACKEND, "ensure-adopting", a.device_json(peers=None))
    # The interface is the handed process's (sh exec'd wireguard-go: same pid), the only
    # wireguard-go in the node and the one the backend supervises, and configured.
    assert done["supervised_pid"] == done["handed_pid"]
    comms = {pid: Path(f"/proc/{pid}/comm").read_text().strip() for pid in a.node.pids()}
    assert [pid for pid, comm in comms.items() if comm == "wireguard-go"] == [done["handed_pid"]]
    assert drive(a.node, BACKEND, "state")["public_key"] == a.key.public_key().base64()
    shown = a.node.run("ip", "-o", "addr", "show", "dev", a.node.wg_ifname).stdout
    assert f" {a.address.ip}/" in shown


def test_apply_peers_removes_a_stale_peer_and_its_route(lab: Lab) -> None:
    mesh = mesh_nodes(lab)
    configure_full_mesh(mesh, BACKEND)
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    done = drive(a.node, BACKEND, "peers", [b.peer_json()])
    assert done == {"add": 0, "update": 0, "remove": 1}
    state = drive(a.node, BACKEND, "state")
    assert set(state["peers"]) == {b.key.public_key().base64()}
    routes = a.node.run("ip", "route", "show", "dev", a.node.wg_ifname).stdout
    assert str(c.address.ip) not in routes
    assert str(b.address.ip) in routes
    ping(a, b)


def test_adding_a_peer_keeps_the_sessions_of_the_others(lab: Lab) -> None:
    mesh = mesh_nodes(lab)
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    drive(a.node, BACKEND, "ensure", a.device_json([b]))
    drive(b.node, BACKEND, "ensure", b.device_json([a]))
    ping(a, b)
    before = peer_state(a, BACKEND, b)
    done = drive(a.node, BACKEND, "peers", [b.peer_json(), c.peer_json()])
    assert done == {"add": 1, "update": 0, "remove": 0}
    after = peer_state(a, BACKEND, b)
    # replace_peers would have reset the peer: handshake gone, counters zero.
    assert after["last_handshake"] == before["last_handshake"]
    assert after["rx_bytes"] >= before["rx_bytes"] > 0


def test_reapplying_the_same_peers_changes_nothing(lab: Lab) -> None:
    mesh = mesh_nodes(lab)
    configure_full_mesh(mesh, BACKEND)
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    done = drive(a.node, BACKEND, "peers", [b.peer_json(), c.peer_json()])
    assert done == {"add": 0, "update": 0, "remove": 0}


def test_a_dual_stack_mesh_carries_both_families(lab: Lab) -> None:
    # Each node holds one mesh address per family (a dual-stack MeshNetwork); the ULA
    # addresses exist only inside the test's namespaces.
    mesh = mesh_nodes(lab)
    a, b = mesh["a"], mesh["b"]
    v6 = {name: f"fd7a:0:0:1::{n}" for n, name in enumerate(mesh, start=1)}

    def device(me: str, peer: str) -> dict[str, object]:
        spec = mesh[me].device_json([mesh[peer]])
        spec["addresses"] = [str(mesh[me].address), f"{v6[me]}/128"]
        (peer_spec,) = spec["peers"]
        peer_spec["allowed_ips"] = [str(mesh[peer].address.network), f"{v6[peer]}/128"]
        return spec

    drive(a.node, BACKEND, "ensure", device("a", "b"))
    drive(b.node, BACKEND, "ensure", device("b", "a"))
    routes = a.node.run("ip", "-6", "route", "show", "dev", a.node.wg_ifname).stdout
    assert f"{v6['b']} proto 82" in routes
    ping(a, b)
    a.node.run("ping", "-6", "-c", "1", "-W", "10", v6["b"])
    b.node.run("ping", "-6", "-c", "1", "-W", "10", v6["a"])
