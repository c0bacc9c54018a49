"""Create the node's MeshAgent before the agent's libraries are imported.

Registration needs a key, the MeshNetwork's port, the Node and one POST. Importing the
Kubernetes client and pydantic (≈ 300 ms of CPU on a small node, docs/benchmarks.md)
does not; so ``reef agent`` first makes those few calls with the standard library, and
the operator allocates the address while the rest of the agent loads. The agent proper
then starts as always: its informers find the MeshAgent (with, usually, its address
already in the status), and its registration step reconciles it like any MeshAgent that
was there before it started.

This is an optimisation only. Whatever it does not handle — a first start before the
MeshNetwork exists, an existing MeshAgent (409), an external host, a kubeconfig with
plugins, any API or key error — it leaves alone and says nothing above debug level; the
agent proper does it, with its retries, conditions and Events. It reads the REEF_*
variables as they are (a test holds the names and defaults to reef.settings); an
invalid one stops the agent proper at start with exit code 2, as before — then with the
MeshAgent already registered, which the next start adopts.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import ssl
import time
import types
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reef.agent.endpoint import choose_endpoint
from reef.agent.keys import load_or_create_key
from reef.agent.registration import Registration
from reef.api import names
from reef.kube.kubeconfig import configure_static
from reef.observability.logs import configure_logging

log = logging.getLogger(__name__)

#: Each call's socket timeout: past it, the agent proper takes over (it retries).
TIMEOUT_SECONDS = 2.0

#: What the service-account admission mounts into every pod (the in-cluster loader's paths).
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

#: The agent settings read here, with their defaults (tests/unit keep them equal to
#: reef.settings.AgentSettings, which cannot be imported here: it is pydantic).
DEFAULTS: Mapping[str, str | None] = {
    "node_name": None,
    "network": names.DEFAULT_NETWORK,
    "key_dir": "/var/lib/reef",
    "endpoint": None,
    "node_ip": None,
    "kubeconfig": None,
    "kube_context": None,
    "external_host": None,
}


class _SkipError(Exception):
    """Left to the agent proper; the message says why (logged at debug level)."""


@dataclass(frozen=True, slots=True)
class EarlyRegistration:
    """The MeshAgent created before the agent's libraries loaded."""

    name: str
    uid: str


def _settings(environment: Mapping[str, str]) -> dict[str, str | None]:
    by_name = {name.upper(): value for name, value in environment.items()}
    return {
        field: by_name.get(f"REEF_{field.upper()}", default) for field, default in DEFAULTS.items()
    }


class _Api:
    """One HTTPS connection to the API server, JSON in and out."""

    def __init__(self, server: str, context: ssl.SSLContext, authorization: str | None) -> None:
        url = urllib.parse.urlsplit(server)
        if url.scheme != "https" or url.hostname is None:
            raise _SkipError(f"server {server!r} is not https")
        self._prefix = url.path.rstrip("/")
        self._authorization = authorization
        self._connection = http.client.HTTPSConnection(
            url.hostname, url.port or 443, context=context, timeout=TIMEOUT_SECONDS
        )

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if self._authorization:
            headers["Authorization"] = self._authorization
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self._connection.request(method, self._prefix + path, body=data, headers=headers)
        response = self._connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else {}

    def close(self) -> None:
        self._connection.close()


def _context(
    ca_file: str | None, verify: bool, cert: str | None, key: str | None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def _connect(settings: Mapping[str, str | None], environment: Mapping[str, str]) -> _Api:
    """The API server, by the credentials the agent proper would use."""
    if settings["kubeconfig"] is None:
        host = environment.get("KUBERNETES_SERVICE_HOST")
        port = environment.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise _SkipError("neither REEF_KUBECONFIG nor in-cluster credentials")
        if ":" in host:
            host = f"[{host}]"
        token = (SERVICE_ACCOUNT / "token").read_text().strip()
        context = _context(str(SERVICE_ACCOUNT / "ca.crt"), True, None, None)
        return _Api(f"https://{host}:{port}", context, f"Bearer {token}")
    found = types.SimpleNamespace(api_key={}, tls_server_name=None)
    if not configure_static(found, Path(settings["kubeconfig"]), settings["kube_context"]):
        raise _SkipError("the kubeconfig needs the client library's loader")
    if found.tls_server_name is not None:
        raise _SkipError("tls-server-name is left to the client library")
    context = _context(found.ssl_ca_cert, found.verify_ssl, found.cert_file, found.key_file)
    return _Api(found.host, context, found.api_key.get("BearerToken"))


def _listen_port(api: _Api, network: str) -> int:
    path = f"/apis/{names.GROUP}/{names.VERSION}/{names.MESH_NETWORK_PLURAL}/{network}"
    status, body = api.call("GET", path)
    if status != 200:
        raise _SkipError(f"MeshNetwork {network}: HTTP {status}")
    port = (body.get("spec") or {}).get("listenPort", 51820)
    if not isinstance(port, int):
        raise _SkipError(f"MeshNetwork {network}: listenPort {port!r}")
    return port


def _node(api: _Api, name: str) -> dict[str, Any] | None:
    """Our Node, by the list the agent's RBAC and its Node informer use; None if unseen."""
    query = urllib.parse.urlencode({"fieldSelector": f"metadata.name={name}"})
    status, body = api.call("GET", f"/api/v1/nodes?{query}")
    items = body.get("items") if status == 200 else None
    return items[0] if items else None


def _register(
    settings: Mapping[str, str | None], environment: Mapping[str, str]
) -> EarlyRegistration:
    name, network, key_dir = settings["node_name"], settings["network"], settings["key_dir"]
    if not name or not network or not key_dir:
        raise _SkipError("REEF_NODE_NAME, REEF_NETWORK or REEF_KEY_DIR is empty")
    if settings["external_host"] is not None:
        raise _SkipError("an external host (its MeshAgent differs; the agent proper knows how)")
    key, _ = load_or_create_key(Path(key_dir), network)
    api = _connect(settings, environment)
    try:
        listen_port = _listen_port(api, network)
        node = _node(api, name)
        registration = Registration(
            name=name,
            network=network,
            node_name=name,
            public_key=key.public_key().base64(),
            endpoint=choose_endpoint(
                node, listen_port, settings["endpoint"], settings["node_ip"]
            ).endpoint,
            node_uid=(node or {}).get("metadata", {}).get("uid"),
        )
        path = f"/apis/{names.GROUP}/{names.VERSION}/{names.MESH_AGENT_PLURAL}"
        status, created = api.call("POST", path, registration.body())
    finally:
        api.close()
    if status != 201:
        raise _SkipError(f"create MeshAgent {name}: HTTP {status} {created.get('reason', '')}")
    return EarlyRegistration(name, str(created["metadata"]["uid"]))


def _configure_logging(environment: Mapping[str, str]) -> bool:
    """The agent's logging, set up now so this module's record looks like the others."""
    by_name = {name.upper(): value for name, value in environment.items()}
    log_format = by_name.get("REEF_LOG_FORMAT", "json")
    level = by_name.get("REEF_LOG_LEVEL", "INFO").upper()
    if log_format not in ("json", "text") or not isinstance(logging.getLevelName(level), int):
        return False  # the agent proper reports the setting
    configure_logging(log_format, level)
    return True


def register_early(environment: Mapping[str, str] | None = None) -> EarlyRegistration | None:
    """Create our MeshAgent now if that is simple; None when the agent proper must."""
    environment = os.environ if environment is None else environment
    if not _configure_logging(environment):
        return None
    started = time.monotonic()
    try:
        registered = _register(_settings(environment), environment)
    except Exception as reason:  # whatever it is, an optimisation must not stop the agent
        log.debug("registration left to the agent proper: %s", reason)
        return None
    log.info(
        "registered MeshAgent %s before loading the agent (%.0f ms)",
        registered.name,
        (time.monotonic() - started) * 1000,
        extra={"phase": "created"},
    )
    return registered
