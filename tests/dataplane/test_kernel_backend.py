"""Kernel backend (pyroute2 generic netlink) — runs inside the test-bed VM.

Outside the VM these skip (no wireguard module on the host); the default
suite boots the VM and runs them there (test_kernel_vm.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from reef.dataplane import DeviceSpec, Endpoint, Key, PeerSpec
from reef.dataplane.kernel import KernelBackend
from reef.dataplane.select import select_backend
from tests.dataplane.meshbed import configure_full_mesh, mesh_nodes, peer_state, ping
from tests.testbed.netns import Lab

pytestmark = pytest.mark.kernel

BACKEND = "kernel"


@pytest.fixture
def backend() -> Iterator[KernelBackend]:
    wg = KernelBackend("reefwgtest0")
    yield wg
    wg.remove_interface()
    wg.close()


def test_backend_selection_prefers_the_kernel_when_the_module_exists() -> None:
    choice = select_backend()
    assert choice.kind == "kernel"
    assert "wireguard" in choice.reason


def test_kernel_interface_gets_key_and_peers_and_reads_them_back(backend: KernelBackend) -> None:
    private = Key.generate()
    peer = PeerSpec(
        Key.generate().public_key(),
        (ipaddress.ip_network("100.64.0.2/32"), ipaddress.ip_network("10.20.0.0/16")),
        Endpoint.parse("198.18.0.2:51820"),
        25,
    )
    spec = DeviceSpec(private, 51820, (ipaddress.ip_interface("100.64.0.1/32"),), peers=(peer,))
    backend.ensure_interface(spec)
    state = backend.read_state()
    assert state.public_key == private.public_key()
    assert state.listen_port == 51820
    assert state.peers[peer.public_key].as_spec() == peer
    index = backend.ipr.link_lookup(ifname=backend.ifname)[0]
    backend.ensure_interface(spec)
    assert backend.ipr.link_lookup(ifname=backend.ifname)[0] == index, "interface was recreated"


def test_kernel_backend_removes_stale_peers_and_chunks_large_allowed_ip_lists(
    backend: KernelBackend,
) -> None:
    backend.chunk_size = 100  # force several netlink messages for one peer
    many = tuple(ipaddress.ip_network(f"10.{n // 256}.{n % 256}.0/24") for n in range(350))
    keep = PeerSpec(Key.generate().public_key(), many)
    stale = PeerSpec(Key.generate().public_key(), (ipaddress.ip_network("100.64.0.9/32"),))
    spec = DeviceSpec(Key.generate(), 51821, (ipaddress.ip_interface("100.64.0.1/32"),))
    backend.ensure_interface(spec)
    backend.apply_peers([keep, stale])
    assert set(backend.read_state().peers) == {keep.public_key, stale.public_key}
    assert backend.read_state().peers[keep.public_key].allowed_ips == keep.allowed_ips
    plan = backend.apply_peers([keep])
    assert plan.remove == (stale.public_key,)
    assert plan.add == ()
    assert plan.update == ()
    assert set(backend.read_state().peers) == {keep.public_key}


@pytest.mark.netns
def test_two_kernel_nodes_handshake_and_ping(lab_of_two: Lab) -> None:
    mesh = mesh_nodes(lab_of_two)
    configure_full_mesh(mesh, BACKEND)
    a, b = mesh["a"], mesh["b"]
    ping(a, b)
    ping(b, a)
    seen = peer_state(a, BACKEND, b)
    assert seen["last_handshake"] is not None
    assert seen["rx_bytes"] > 0
    link = a.node.run("ip", "-details", "link", "show", a.node.wg_ifname).stdout
    assert "wireguard" in link, "not a kernel WireGuard device"
