"""Build a WireGuard mesh out of namespace nodes, through the real backends.

Shared by the userspace tests (on the host) and the kernel tests (in the VM):
each node gets mesh address 100.64.0.<n>/32 (CGNAT range, only ever inside
the test namespaces), listens on 51820 on its underlay address, and every
call goes through node_driver.py running inside the node — the way the agent
runs in production.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reef.dataplane import Key
from tests.testbed.netns import Lab, Node

DRIVER = Path(__file__).with_name("node_driver.py")
LISTEN_PORT = 51820


def drive(node: Node, backend: str, command: str, request: Any = None) -> Any:
    """Run one node_driver command inside ``node`` (like one agent process would)."""
    result = node.run(
        sys.executable,
        str(DRIVER),
        backend,
        node.wg_ifname,
        command,
        input=json.dumps(request),
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"node_driver {command} on {node.name} failed ({result.returncode}):\n{result.stderr}"
        )
    return json.loads(result.stdout)


@dataclass
class MeshNode:
    node: Node
    key: Key
    address: ipaddress.IPv4Interface

    def peer_json(self, keepalive: int = 0) -> dict[str, Any]:
        """How the other nodes see this one."""
        return {
            "public_key": self.key.public_key().base64(),
            "endpoint": f"{self.node.underlay.ip}:{LISTEN_PORT}",
            "allowed_ips": [str(self.address.network)],
            "persistent_keepalive": keepalive,
        }

    def device_json(self, peers: list[MeshNode] | None) -> dict[str, Any]:
        return {
            "private_key": self.key.base64(),
            "listen_port": LISTEN_PORT,
            "addresses": [str(self.address)],
            "peers": None if peers is None else [p.peer_json() for p in peers],
        }


def mesh_nodes(lab: Lab) -> dict[str, MeshNode]:
    """A key and a mesh address per node (nothing configured yet)."""
    return {
        node.name: MeshNode(node, Key.generate(), ipaddress.IPv4Interface(f"100.64.0.{n}/32"))
        for n, node in enumerate(lab, start=1)
    }


def configure_full_mesh(mesh: dict[str, MeshNode], backend: str) -> dict[str, int]:
    """Ensure every node with all others as peers; return ifindex per node."""
    return {
        name: drive(
            me.node,
            backend,
            "ensure",
            me.device_json([other for other in mesh.values() if other is not me]),
        )["ifindex"]
        for name, me in mesh.items()
    }


def ping(src: MeshNode, dst: MeshNode) -> None:
    """One ping over the mesh; -W bounds the wait, and the ping triggers the handshake."""
    src.node.run("ping", "-c", "1", "-W", "10", str(dst.address.ip))


def peer_state(src: MeshNode, backend: str, dst: MeshNode) -> dict[str, Any]:
    state = drive(src.node, backend, "state")
    peer: dict[str, Any] = state["peers"][dst.key.public_key().base64()]
    return peer
