"""``reef join`` / ``showconf`` / ``leave``: a host outside the cluster as a mesh member.

The key pair is made on this host (the private key goes to a 0600 file and nowhere
else; only the public key reaches the API), the MeshAgent is created without
``nodeName``, and its permanent address is awaited by watch. The wg-quick config holds
the peers the agent's own planner chooses for this member.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

from reef.agent.keys import KeyFileError, key_path, load_key, load_or_create_key
from reef.agent.peers import endpoint_hostnames, plan_peers, split_endpoint
from reef.api import names
from reef.api.records import read_mesh_agent, read_mesh_network
from reef.cli.cluster import Body, CliError, Cluster
from reef.cli.report import DATAPLANE_LABEL, WG_QUICK
from reef.cli.wgquick import render_wg_quick
from reef.dataplane import Key
from reef.dataplane.spec import IPAddress

DEFAULT_KEY_DIR = Path("~/.config/reef/keys")


def write_private(path: Path | None, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (or to stdout)."""
    if path is None:
        sys.stdout.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an existing file keeps its mode otherwise
        handle.write(text)


def _resolve(hosts: set[str]) -> dict[str, IPAddress | None]:
    import ipaddress

    resolved: dict[str, IPAddress | None] = {}
    for host in hosts:
        try:
            info = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
            resolved[host] = ipaddress.ip_address(str(info[0][4][0]))
        except (OSError, IndexError, ValueError):
            resolved[host] = None
    return resolved


def render_config(cluster: Cluster, body: Body, private_key: Key | None) -> str:
    """The wg-quick config of member ``body`` as the API says now."""
    me = read_mesh_agent(body)
    if not me.status.addresses:
        raise CliError(f"MeshAgent {me.name} has no address yet")
    network = read_mesh_network(cluster.network(me.spec.network))
    members = [read_mesh_agent(a) for a in cluster.agents(me.spec.network)]
    public = Key.from_base64(me.spec.public_key)
    plan = plan_peers(me, public, members, network.spec, _resolve(endpoint_hostnames(members)))
    listen_port = split_endpoint(me.spec.endpoint)[1] if me.spec.endpoint else None
    return render_wg_quick(
        name=me.name,
        network=me.spec.network,
        private_key=private_key,
        addresses=me.status.addresses,
        listen_port=listen_port,
        mtu=network.spec.mtu,
        plan=plan,
    )


def agent_body(
    name: str, network: str, public_key: str, endpoint: str | None, address: str | None
) -> Body:
    spec: dict[str, Any] = {"network": network, "publicKey": public_key}
    if endpoint:
        spec["endpoint"] = endpoint
    if address:
        spec["requestedAddresses"] = [address]
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.MESH_AGENT_KIND,
        "metadata": {
            "name": name,
            "labels": {DATAPLANE_LABEL: WG_QUICK},
            # Saves the operator a write; it removes the finalizer after the release.
            "finalizers": [names.RELEASE_FINALIZER],
        },
        "spec": spec,
    }


def join(
    cluster: Cluster,
    *,
    name: str,
    network: str,
    endpoint: str | None,
    address: str | None,
    key_dir: Path,
    timeout: float,
) -> str:
    """Register this host (idempotent with the same key) and return its wg-quick config."""
    if endpoint:
        try:
            split_endpoint(endpoint)
        except ValueError as error:
            raise CliError(f"--endpoint: {error}") from error
    cluster.networks(network)  # a clear error when the network does not exist
    try:
        key, created = load_or_create_key(key_dir, name)
    except KeyFileError as error:
        raise CliError(str(error)) from error
    public = key.public_key().base64()
    existing = cluster.agent(name)
    if existing is None:
        cluster.create_agent(agent_body(name, network, public, endpoint, address))
    else:
        spec = existing.get("spec") or {}
        if spec.get("nodeName"):
            raise CliError(
                f"MeshAgent {name} belongs to node {spec['nodeName']}; pick another name"
            )
        if spec.get("publicKey") != public:
            raise CliError(
                f"MeshAgent {name} exists with another public key than {key_path(key_dir, name)}"
                f"{' (just created)' if created else ''}; run `reef leave {name}` first, or"
                " point --key-dir at the key it was joined with"
            )
        if spec.get("network", names.DEFAULT_NETWORK) != network:
            raise CliError(f"MeshAgent {name} is in network {spec.get('network')}, not {network}")
        if endpoint and spec.get("endpoint") != endpoint:
            cluster.patch_agent(name, {"spec": {"endpoint": endpoint}})
    body = cluster.wait_for_agent(
        name, lambda b: bool((b.get("status") or {}).get("addresses")), timeout
    )
    return render_config(cluster, body, key)


def showconf(cluster: Cluster, *, name: str, key_dir: Path) -> str:
    body = cluster.agent(name)
    if body is None:
        raise CliError(f"MeshAgent {name} does not exist (kubectl get ma)")
    private: Key | None = None
    with contextlib.suppress(FileNotFoundError, KeyFileError):
        candidate = load_key(key_path(key_dir, name))
        if candidate.public_key().base64() == (body.get("spec") or {}).get("publicKey"):
            private = candidate
    return render_config(cluster, body, private)


def leave(cluster: Cluster, *, name: str, timeout: float) -> bool:
    """Delete the member; waits (by watch) until the operator released its address."""
    body = cluster.agent(name)
    if body is None:
        return False
    if (body.get("spec") or {}).get("nodeName"):
        raise CliError(
            f"MeshAgent {name} is node {body['spec']['nodeName']}'s; it leaves with its Node"
        )
    cluster.delete_agent(name)
    cluster.wait_gone(name, timeout)
    return True
