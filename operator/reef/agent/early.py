"""Create the node's MeshAgent while the agent's libraries are imported.

Registration needs a key, the MeshNetwork's port, the Node and one POST. Importing the
rest of the agent (asyncio, pyroute2, prometheus_client, reef's agent modules: ≈ 100 ms
of CPU on a small node, docs/benchmarks.md) does not; so ``reef agent`` first makes
those few calls with the standard library — on a thread, while its main thread imports
the rest (reef.agent.overlap) — and the operator allocates the address before the agent
proper starts. That then starts as always: its informers find the MeshAgent (with,
usually, its address already in the status), and its registration step reconciles it
like any MeshAgent that was there before it started.

This is an optimisation only. Whatever it does not handle — a first start before the
MeshNetwork exists, an existing MeshAgent (409), an external host, a kubeconfig with
plugins, any API or key error — it leaves alone and says nothing above debug level; the
agent proper does it, with its retries, conditions and Events. It reads the REEF_*
variables as they are (a test holds the names and defaults to reef.settings); an
invalid one stops the agent proper at start with exit code 2, as before — then with the
MeshAgent already registered, which the next start adopts.
"""

from __future__ import annotations

# The first connection encodes the host name with this codec (socket, http.client): it is
# imported here, not during the calls, which must import nothing (reef.agent.overlap).
import encodings.idna  # noqa: F401
import json
import logging
import os
import subprocess
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reef.agent import early_interface
from reef.agent.early_interface import InterfacePlan
from reef.agent.endpoint import choose_endpoint
from reef.agent.keys import load_or_create_key
from reef.agent.overlap import run_while_importing
from reef.agent.registration import Registration
from reef.api import names
from reef.dataplane import Key, wireguard_go
from reef.kube.http import HttpTransport, connect
from reef.kube.writes import ApiException
from reef.observability.logs import configure_logging

log = logging.getLogger(__name__)

#: The agent settings read here, with their defaults (tests/unit keep them equal to
#: reef.settings.AgentSettings, which is not used here: it refuses a bad variable, and
#: reporting that is the agent proper's job, not this optional step's).
DEFAULTS: Mapping[str, str | None] = {
    "node_name": None,
    "network": names.DEFAULT_NETWORK,
    "interface": "reef0",
    "key_dir": "/var/lib/reef",
    "endpoint": None,
    "node_ip": None,
    "kubeconfig": None,
    "kube_context": None,
    "external_host": None,
    "backend": "auto",
    "log_format": "json",
    "log_level": "INFO",
}


class _SkipError(Exception):
    """Left to the agent proper; the message says why (logged at debug level)."""


@dataclass(frozen=True, slots=True)
class EarlyRegistration:
    """The MeshAgent created before the agent's libraries loaded, and the wireguard-go
    started for its interface (reef.agent.early_interface), which the agent proper
    supervises from then on."""

    name: str
    uid: str
    wireguard_go: subprocess.Popen[bytes] | None = None


def _settings(environment: Mapping[str, str]) -> dict[str, str | None]:
    by_name = {name.upper(): value for name, value in environment.items()}
    return {
        field: by_name.get(f"REEF_{field.upper()}", default) for field, default in DEFAULTS.items()
    }


#: Each call's socket timeout: past it, the agent proper takes over (it retries).
TIMEOUT_SECONDS = 2.0


def _json(transport: HttpTransport, method: str, path: str, body: Any = None) -> Any:
    """One call. The two reads ask for ``resourceVersion=0``: served from the API
    server's watch cache, so a whole fleet of agents starting at once (a rolling update
    of 5000 nodes) costs etcd nothing for them; a stale port or Node only means the
    agent proper corrects the endpoint once its informers have listed."""
    data = None if body is None else json.dumps(body).encode()
    return json.loads(transport.request(method, path, body=data, timeout=TIMEOUT_SECONDS).data)


def _network_spec(api: HttpTransport, network: str) -> dict[str, Any]:
    """The MeshNetwork's spec; ApiException 404 when it does not exist (yet)."""
    path = f"/apis/{names.GROUP}/{names.VERSION}/{names.MESH_NETWORK_PLURAL}/{network}"
    spec: dict[str, Any] = _json(api, "GET", f"{path}?resourceVersion=0").get("spec") or {}
    port = spec.get("listenPort", 51820)
    if not isinstance(port, int):
        raise _SkipError(f"MeshNetwork {network}: listenPort {port!r}")
    return spec


def _node(api: HttpTransport, name: str) -> dict[str, Any] | None:
    """Our Node, by the list the agent's RBAC and its Node informer use; None if unseen."""
    query = urllib.parse.urlencode(
        {"fieldSelector": f"metadata.name={name}", "resourceVersion": "0"}
    )
    try:
        items = _json(api, "GET", f"/api/v1/nodes?{query}").get("items")
    except ApiException:
        return None  # e.g. 403: the agent proper treats its Node as optional too
    return items[0] if items else None


def _register(
    settings: Mapping[str, str | None],
    environment: Mapping[str, str],
    modules: Sequence[str],
) -> EarlyRegistration:
    name, network, key_dir = settings["node_name"], settings["network"], settings["key_dir"]
    if not name or not network or not key_dir:
        raise _SkipError("REEF_NODE_NAME, REEF_NETWORK or REEF_KEY_DIR is empty")
    if settings["external_host"] is not None:
        raise _SkipError("an external host (its MeshAgent differs; the agent proper knows how)")
    key, _ = load_or_create_key(Path(key_dir), network)
    kubeconfig = settings["kubeconfig"]
    api = connect(
        None if kubeconfig is None else Path(kubeconfig), settings["kube_context"], environment
    )
    if api is None:
        raise _SkipError("the kubeconfig needs the client library's loader")
    # Derived here: it may import (reef.dataplane.x25519), and the calls' thread must not.
    public_key = key.public_key().base64()
    interface = early_interface.plan_interface(settings)
    started = time.monotonic()

    def calls() -> EarlyRegistration:
        network_spec = _network_spec(api, network)
        listen_port: int = network_spec.get("listenPort", 51820)
        node = _node(api, name)
        registration = Registration(
            name=name,
            network=network,
            node_name=name,
            public_key=public_key,
            endpoint=choose_endpoint(
                node, listen_port, settings["endpoint"], settings["node_ip"]
            ).endpoint,
            node_uid=(node or {}).get("metadata", {}).get("uid"),
        )
        path = f"/apis/{names.GROUP}/{names.VERSION}/{names.MESH_AGENT_PLURAL}"
        created = _json(api, "POST", path, registration.body())  # 409 if it exists
        # Logged here, when it happened, not once the imports beside it are done.
        log.info(
            "registered MeshAgent %s while loading the agent (%.0f ms)",
            name,
            (time.monotonic() - started) * 1000,
            extra={"phase": "created"},
        )
        uid = str(created["metadata"]["uid"])
        if interface is None:
            return EarlyRegistration(name, uid)
        mtu = network_spec.get("mtu")
        process = _bring_up(
            api, interface, created, key=key, listen_port=listen_port, mtu=mtu, started=started
        )
        return EarlyRegistration(name, uid, process)

    try:
        return run_while_importing(calls, modules)
    finally:
        api.close()


def _bring_up(
    api: HttpTransport,
    interface: InterfacePlan,
    created: dict[str, Any],
    *,
    key: Key,
    listen_port: int,
    mtu: object,
    started: float,
) -> subprocess.Popen[bytes] | None:
    """wireguard-go started and the interface configured, once the address has come;
    the process (for the agent proper to supervise), None if none was started.

    The address comes first: the contract is no interface before the permanent address
    (DESIGN.md, agent step 4), so wireguard-go, which makes the interface as it starts,
    is only started with the address in hand. It listens 5-15 ms later.
    """
    name = str(created["metadata"]["name"])
    deadline = time.monotonic() + early_interface.ADDRESS_WAIT_SECONDS
    try:
        addresses = early_interface.await_addresses(api, name, created, deadline)
    except Exception as reason:  # the agent proper waits for the address itself
        log.debug("interface left to the agent proper: %s", reason)
        return None
    if not addresses:
        log.debug(
            "no address within %.1f s; the agent proper waits for it",
            early_interface.ADDRESS_WAIT_SECONDS,
        )
        return None
    try:
        process = wireguard_go.spawn(interface.ifname)
    except OSError as reason:
        log.debug("interface left to the agent proper: %s", reason)
        return None
    log.info(
        "started wireguard-go pid %d for %s while loading the agent",
        process.pid,
        interface.ifname,
    )
    try:
        early_interface.configure(
            interface,
            process,
            key=key,
            listen_port=listen_port,
            addresses=addresses,
            mtu=mtu if isinstance(mtu, int) else None,
        )
    except Exception as reason:  # the agent proper configures the interface
        log.debug("interface left to the agent proper: %s", reason)
        return process
    log.info(
        "mesh address %s on %s while loading the agent (%.0f ms)",
        ", ".join(map(str, addresses)),
        interface.ifname,
        (time.monotonic() - started) * 1000,
        extra={"phase": "interface"},
    )
    return process


def _configure_logging(settings: Mapping[str, str | None]) -> bool:
    """The agent's logging, set up now so this module's record looks like the others."""
    log_format, level = settings["log_format"], str(settings["log_level"]).upper()
    if log_format not in ("json", "text") or not isinstance(logging.getLevelName(level), int):
        return False  # the agent proper reports the setting
    configure_logging(log_format, level)
    return True


def register_early(
    environment: Mapping[str, str] | None = None, modules: Sequence[str] = ()
) -> EarlyRegistration | None:
    """Create our MeshAgent now if that is simple; None when the agent proper must.

    ``modules`` are imported meanwhile, while the calls wait for their answers (when
    this step leaves the registration to the agent proper, they are not imported here).
    """
    environment = os.environ if environment is None else environment
    settings = _settings(environment)
    if not _configure_logging(settings):
        return None
    try:
        return _register(settings, environment, modules)
    except Exception as reason:  # whatever it is, an optimisation must not stop the agent
        log.debug("registration left to the agent proper: %s", reason)
        return None
