"""Drive a reef.dataplane backend from inside a namespace node.

In production the agent process itself runs in the node's network namespace
(host network); the tests mirror that by running this driver with
``ip netns exec <node> python node_driver.py …``. One invocation = one agent
"process lifetime", so running it twice also exercises adoption of a running
wireguard-go.

    python node_driver.py BACKEND IFNAME COMMAND < request.json > answer.json

BACKEND is kernel, userspace or auto; COMMAND is one of:
  ensure  request = device spec, answer = {"ifindex": N}
  peers   request = list of peer specs, answer = {"add": n, "update": n, "remove": n}
  state   answer = device state
  select  answer = {"kind": ..., "reason": ...}
  remove  answer = {}
  ensure-adopting  (userspace) as ensure, after being handed a wireguard-go that is still
          starting: it begins once the backend has found no UAPI socket;
          answer = {"ifindex": N, "handed_pid": N, "supervised_pid": N}
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from typing import Any

from pyroute2 import IPRoute

from reef.dataplane import DeviceSpec, Endpoint, Key, PeerSpec, uapi
from reef.dataplane.select import open_backend, select_backend
from reef.dataplane.spec import liveness_of
from reef.dataplane.userspace import UserspaceBackend


def peer_from_json(data: dict[str, Any]) -> PeerSpec:
    return PeerSpec(
        public_key=Key.from_base64(data["public_key"]),
        allowed_ips=tuple(ipaddress.ip_network(n) for n in data.get("allowed_ips", [])),
        endpoint=Endpoint.parse(data["endpoint"]) if data.get("endpoint") else None,
        persistent_keepalive=data.get("persistent_keepalive", 0),
    )


def peer_to_json(peer: PeerSpec) -> dict[str, Any]:
    return {
        "public_key": peer.public_key.base64(),
        "allowed_ips": [str(n) for n in peer.allowed_ips],
        "endpoint": str(peer.endpoint) if peer.endpoint else None,
        "persistent_keepalive": peer.persistent_keepalive,
    }


def device_from_json(data: dict[str, Any]) -> DeviceSpec:
    peers = data.get("peers")
    return DeviceSpec(
        private_key=Key.from_base64(data["private_key"]),
        listen_port=data["listen_port"],
        addresses=tuple(ipaddress.ip_interface(a) for a in data["addresses"]),
        mtu=data.get("mtu", 1420),
        peers=None if peers is None else tuple(peer_from_json(p) for p in peers),
    )


def _gated_wireguard_go(backend: UserspaceBackend) -> int:
    """Hand ``backend`` a wireguard-go (as reef.agent.early does) that execs only after the
    backend's first look at the UAPI socket: so that look always finds it starting."""
    backend.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["sh", "-c", 'read _ && exec wireguard-go -f "$1"', "sh", backend.ifname],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "LOG_LEVEL": "error"},
    )
    backend.adopt(process)
    first_look = backend.alive

    def alive() -> bool:
        answer = first_look()
        if process.stdin is not None and not process.stdin.closed:
            process.stdin.write(b"go\n")  # the gate opens after this first answer
            process.stdin.close()
        return answer

    backend.alive = alive  # type: ignore[method-assign]
    return process.pid


def main(argv: list[str]) -> int:
    backend_name, ifname, command = argv
    override = None if backend_name == "auto" else backend_name
    if command == "select":
        choice = select_backend(override)  # type: ignore[arg-type]
        print(json.dumps({"kind": choice.kind, "reason": choice.reason}))
        return 0
    request = json.loads(sys.stdin.read() or "null")
    backend, _ = open_backend(ifname, override=override)  # type: ignore[arg-type]
    try:
        answer: Any
        if command == "ensure":
            backend.ensure_interface(device_from_json(request))
            with IPRoute() as ipr:
                answer = {"ifindex": ipr.link_lookup(ifname=ifname)[0]}
        elif command == "ensure-adopting":
            assert isinstance(backend, UserspaceBackend)
            handed = _gated_wireguard_go(backend)
            backend.ensure_interface(device_from_json(request))
            with IPRoute() as ipr:
                answer = {"ifindex": ipr.link_lookup(ifname=ifname)[0], "handed_pid": handed}
            # the process the backend supervises (and reaps) from now on
            answer["supervised_pid"] = None if backend.process is None else backend.process.pid
        elif command == "peers":
            plan = backend.apply_peers([peer_from_json(p) for p in request])
            answer = {"add": len(plan.add), "update": len(plan.update), "remove": len(plan.remove)}
        elif command == "state":
            state = backend.read_state()
            answer = {
                "public_key": str(state.public_key),
                "listen_port": state.listen_port,
                "peers": {
                    str(key): {
                        **peer_to_json(peer.as_spec()),
                        "last_handshake": peer.last_handshake.isoformat()
                        if peer.last_handshake
                        else None,
                        "rx_bytes": peer.rx_bytes,
                        "tx_bytes": peer.tx_bytes,
                    }
                    for key, peer in state.peers.items()
                },
            }
        elif command == "liveness":
            live = backend.read_liveness()
            state = backend.read_state()  # after: its counters are as new or newer
            fast = None
            if isinstance(backend, UserspaceBackend):  # wireguard-go's line order, really?
                fast = len(uapi._LIVENESS_BLOCK.findall(backend.exchange(uapi.GET_REQUEST)))
            answer = {
                "liveness": {Key(raw).base64(): list(value) for raw, value in live.items()},
                "state": {Key(raw).base64(): list(v) for raw, v in liveness_of(state).items()},
                "fast_path_blocks": fast,
            }
        elif command == "remove":
            backend.remove_interface()
            answer = {}
        else:
            raise SystemExit(f"unknown command {command!r}")
    finally:
        backend.close()
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
