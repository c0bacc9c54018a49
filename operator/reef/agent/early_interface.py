"""Put the mesh address on the interface while the agent's libraries still load.

After the early registration's POST (reef.agent.early) the operator allocates the address
in tens of milliseconds, while the agent proper needs another ≈ 100 ms of imports before
it can even ask. On a node with userspace WireGuard, the early step therefore also watches
its own MeshAgent for ``status.addresses`` for at most :data:`ADDRESS_WAIT_SECONDS` after
the POST and, once they come, starts wireguard-go (never before: no interface before the
permanent address), gives the interface its key, listen port and addresses and sets
it up — with the standard library only (reef.dataplane.plain_netlink,
reef.dataplane.wireguard_go). The agent proper is then handed the wireguard-go process
(UserspaceBackend.adopt) and configures the interface as always: it finds the key, port
and addresses in place and adds the peers.

Only a first start on a node without the interface does this, and only with the
userspace backend (the kernel backend's link and its generic-netlink configuration are
left to the agent proper). Anything unexpected ends this step silently; the agent proper
does it then, as before.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reef.api import names
from reef.dataplane import Key, plain_netlink, uapi, wireguard_go
from reef.kube.http import HttpTransport

log = logging.getLogger(__name__)

#: How long after its POST the early step waits for the operator's address. The agent
#: proper starts only after that (it waits for this thread), so the wait is short: the
#: operator allocates within ≈ 50 ms when it runs, and when it does not, the agent proper
#: waits for the address itself.
ADDRESS_WAIT_SECONDS = 0.5

#: How long wireguard-go may take to listen on its UAPI socket (it takes 5-15 ms).
LISTEN_TIMEOUT_SECONDS = 1.0

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True, slots=True)
class InterfacePlan:
    """An interface the early step may create: userspace WireGuard, not there yet."""

    ifname: str
    socket_dir: Path = wireguard_go.SOCKET_DIR


def plan_interface(settings: Mapping[str, str | None]) -> InterfacePlan | None:
    """The interface to bring up early, or None when the agent proper must decide."""
    backend, ifname = settings["backend"], settings["interface"]
    if backend not in ("auto", "userspace") or not ifname:
        return None
    if len(ifname) > 15 or "/" in ifname or any(c.isspace() for c in ifname):
        return None  # the agent proper refuses the setting
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        pass  # no such link: a first start on this node
    else:
        return None  # a previous agent's interface: the agent proper adopts it
    try:
        if backend == "auto" and plain_netlink.kernel_has_wireguard():
            return None
    except OSError:
        return None
    return InterfacePlan(ifname)


def _addresses_of(body: Mapping[str, Any]) -> list[IPInterface]:
    found = (body.get("status") or {}).get("addresses") or []
    return [ipaddress.ip_interface(f"{a}/{ipaddress.ip_address(a).max_prefixlen}") for a in found]


def await_addresses(
    api: HttpTransport, name: str, created: Mapping[str, Any], deadline: float
) -> list[IPInterface]:
    """Our MeshAgent's addresses once the operator writes them; [] at the deadline.

    A watch of the one object from the version the POST returned: the operator's status
    write is the next event. Nothing is polled.
    """
    if created_addresses := _addresses_of(created):
        return created_addresses
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return []
    query = {
        "fieldSelector": f"metadata.name={name}",
        "watch": "true",
        "resourceVersion": created["metadata"]["resourceVersion"],
        "timeoutSeconds": "5",
    }
    path = f"/apis/{names.GROUP}/{names.VERSION}/{names.MESH_AGENT_PLURAL}"
    response = api.request("GET", path, query, timeout=remaining, stream=True)
    pending = b""
    try:
        for chunk in response.stream():
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                event = json.loads(line)
                if event.get("type") not in ("ADDED", "MODIFIED"):
                    return []  # deleted, or an error: the agent proper sees to it
                if found := _addresses_of(event.get("object") or {}):
                    return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if response.connection.sock is not None:
                response.connection.sock.settimeout(remaining)
    except TimeoutError:
        return []
    finally:
        response.close()
    return []


def configure(
    plan: InterfacePlan,
    process: subprocess.Popen[bytes],
    *,
    key: Key,
    listen_port: int,
    addresses: Sequence[IPInterface],
    mtu: int | None,
) -> None:
    """Key, port, addresses and up, on the interface ``process`` (wireguard-go) made."""
    wireguard_go.await_listener(process, plan.ifname, plan.socket_dir, LISTEN_TIMEOUT_SECONDS)
    request = uapi.encode_set(uapi.device_lines(key, listen_port))
    answer = wireguard_go.exchange(
        wireguard_go.socket_path(plan.socket_dir, plan.ifname), (request,), timeout=2.0
    )
    uapi.decode_response(answer).check()
    index = socket.if_nametoindex(plan.ifname)
    plain_netlink.add_addresses(index, addresses)
    plain_netlink.set_up(index, mtu)
