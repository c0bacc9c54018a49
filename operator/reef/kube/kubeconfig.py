"""Read a kubeconfig that needs no plugins, without the client library's loader.

``kubernetes.config.kube_config`` imports requests, OAuth and (when installed) Google's
auth library at module level, whatever the file holds: about 120 ms and 10 MiB of an
agent's start (docs/benchmarks.md). Most kubeconfigs an agent is given (a test bed's,
an external host's from ``reef join``) are static: a server, a CA, a client certificate
or a bearer token. Those are read here into the client's ``Configuration``; anything
else — exec and auth-provider plugins, basic auth, proxies, a missing field — returns
False, and the caller uses the library's loader, which knows every form.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: The user entries this reader understands; any other key means "use the full loader".
_STATIC_USER_KEYS = frozenset(
    {
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
        "token",
        "tokenFile",
    }
)
_STATIC_CLUSTER_KEYS = frozenset(
    {
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "extensions",
    }
)


class _UnsupportedError(Exception):
    """The kubeconfig needs something only the library's loader does."""


def _named(entries: Any, name: str) -> dict[str, Any]:
    for entry in entries or ():
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    raise _UnsupportedError(f"no entry named {name!r}")


def _section(entry: dict[str, Any], key: str) -> dict[str, Any]:
    section = entry.get(key)
    if not isinstance(section, dict):
        raise _UnsupportedError(f"no {key} section")
    return section


class _Files:
    """Where embedded (``*-data``) certificates and keys are written for ssl to read.

    One private directory per process, removed at exit (as the library's loader does
    with its temporary files).
    """

    def __init__(self) -> None:
        self._directory: Path | None = None

    def write(self, name: str, data: bytes) -> str:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="reef-kubeconfig-"))
            atexit.register(shutil.rmtree, self._directory, ignore_errors=True)
        path = self._directory / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        return str(path)


_files = _Files()


def _file_or_data(section: dict[str, Any], key: str, base: Path) -> str | None:
    """A path to the ``key`` file, or to a file holding the base64 ``key-data``."""
    data = section.get(f"{key}-data")
    if data is not None:
        return _files.write(key, base64.b64decode(data))
    path = section.get(key)
    if path is None:
        return None
    return str(base / path)


def configure_static(configuration: Any, config_file: Path, context: str | None) -> bool:
    """Fill ``configuration`` from a static kubeconfig; False when it is not one."""
    import yaml  # here, not at the top: an in-cluster agent never reads YAML

    try:
        with config_file.open("rb") as file:
            config = yaml.load(file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if not isinstance(config, dict):
            raise _UnsupportedError("not a mapping")
        chosen = _section(
            _named(config.get("contexts"), context or config.get("current-context") or ""),
            "context",
        )
        cluster = _section(_named(config.get("clusters"), chosen.get("cluster", "")), "cluster")
        user = _section(_named(config.get("users"), chosen.get("user", "")), "user")
        if not set(user) <= _STATIC_USER_KEYS or not set(cluster) <= _STATIC_CLUSTER_KEYS:
            raise _UnsupportedError("plugins, basic auth or a proxy")
        server = cluster.get("server")
        if not isinstance(server, str) or not server.startswith("https://"):
            raise _UnsupportedError("no https server")
        base = config_file.resolve().parent
        token = user.get("token")
        if token is None and "tokenFile" in user:
            token = (base / user["tokenFile"]).read_text().strip()
        # Everything read before anything is set: a file this cannot read leaves the
        # configuration as it was for the library's loader.
        values = {
            "host": server.rstrip("/"),
            "ssl_ca_cert": _file_or_data(cluster, "certificate-authority", base),
            "verify_ssl": not cluster.get("insecure-skip-tls-verify", False),
            "cert_file": _file_or_data(user, "client-certificate", base),
            "key_file": _file_or_data(user, "client-key", base),
        }
        if "tls-server-name" in cluster:
            values["tls_server_name"] = cluster["tls-server-name"]
    except (_UnsupportedError, OSError, yaml.YAMLError, ValueError, TypeError):
        return False
    for name, value in values.items():
        setattr(configuration, name, value)
    if token:
        configuration.api_key["BearerToken"] = f"Bearer {token}"
    return True
