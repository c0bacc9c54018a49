"""Is a port the agent needs taken by someone else? Say which, and what to change.

51820/UDP is also the default of Calico's, k3s/flannel's and Kilo's WireGuard; 9091/TCP is
Calico Felix's metrics port. A clash must not crash-loop the agent without a word: the
agent checks before it configures, and says (condition, Event, exit message — the last
in the container's termination message, so ``kubectl describe pod`` shows it) which port
is taken and which value to change.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from pathlib import Path

#: Where Kubernetes picks up a container's last words (terminationMessagePath default).
TERMINATION_LOG = Path("/dev/termination-log")


class PortInUseError(Exception):
    """A port the agent needs is taken; the message says what to change."""


def udp_port_taken(port: int) -> bool:
    """True when binding UDP ``port`` on any address (IPv4, and IPv6 where there is one) fails."""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            continue  # no IPv6 in this namespace
        with sock:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address, port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return True
    return False


def wireguard_port_message(node: str, network: str, port: int) -> str:
    return (
        f"UDP port {port} (the WireGuard listen port of MeshNetwork {network}) is already in"
        f" use on node {node} — another WireGuard (Calico, k3s/flannel and Kilo default to"
        f" 51820) or another process. Free it, or set another port for the mesh:"
        f' kubectl patch mn {network} --type merge -p \'{{"spec":{{"listenPort":{port + 1}}}}}\''
    )


def metrics_port_message(node: str, address: str, port: int) -> str:
    return (
        f"TCP port {port} on {address} (the agent's /metrics, /healthz and /readyz) is already"
        f" in use on node {node} (Calico Felix serves its metrics on 9091). Set another port:"
        " chart value agent.metricsPort (env REEF_METRICS_PORT), or another address:"
        " agent.metricsBindAddress (env REEF_BIND_ADDRESS)"
    )


def write_termination_message(message: str) -> None:
    """Leave ``message`` where the kubelet reads it; nothing to do outside a container."""
    if TERMINATION_LOG.exists():
        with contextlib.suppress(OSError):
            TERMINATION_LOG.write_text(message + "\n")
