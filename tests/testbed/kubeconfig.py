"""Kubeconfig files: writing the bed's, and safely picking one context from a user's.

Every kubeconfig the suite hands to a test holds exactly one context and
names it as current, so a test (or a process it starts with ``KUBECONFIG``)
cannot reach any other cluster by accident.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _document(
    name: str, cluster: dict[str, Any], user: dict[str, Any], namespace: str | None = None
) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": name, "user": name}
    if namespace is not None:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
        "preferences": {},
    }


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def write_client_cert_kubeconfig(
    path: Path, *, name: str, server: str, ca_cert: Path, client_cert: Path, client_key: Path
) -> Path:
    """A self-contained kubeconfig (certificates embedded) for a client certificate."""
    cluster = {"server": server, "certificate-authority-data": _b64(ca_cert)}
    user = {"client-certificate-data": _b64(client_cert), "client-key-data": _b64(client_key)}
    return _write(path, _document(name, cluster, user))


@dataclass(frozen=True)
class ClusterEntry:
    """The cluster half of the current context of a kubeconfig."""

    server: str
    fields: dict[str, Any]
    """The raw ``cluster`` mapping (server, CA data, TLS options), paths made absolute."""


def _absolute_paths(entry: dict[str, Any], keys: tuple[str, ...], base: Path) -> dict[str, Any]:
    """Relative file references in a kubeconfig are relative to the file itself."""
    fixed = dict(entry)
    for key in keys:
        value = fixed.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            fixed[key] = str((base / value).resolve())
    return fixed


def _named(document: dict[str, Any], section: str, name: str, source: Path) -> dict[str, Any]:
    for item in document.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(section[:-1])
            if isinstance(body, dict):
                return body
    raise UnsafeClusterError(f"{source}: no {section[:-1]} named {name!r}")


def current_cluster(path: Path) -> ClusterEntry:
    """The cluster of the current context of a kubeconfig the suite wrote."""
    document = yaml.safe_load(path.read_text())
    context = _named(document, "contexts", document["current-context"], path)
    cluster = _named(document, "clusters", context["cluster"], path)
    fields = _absolute_paths(cluster, ("certificate-authority",), path.parent)
    return ClusterEntry(server=str(cluster["server"]), fields=fields)


def write_token_kubeconfig(path: Path, *, like: Path, name: str, token: str) -> Path:
    """A kubeconfig for a bearer token, to the same cluster as kubeconfig `like`."""
    cluster = current_cluster(like)
    return _write(path, _document(name, cluster.fields, {"token": token}))


class UnsafeClusterError(RuntimeError):
    """The suite was pointed at a cluster it was not explicitly allowed to touch."""


def _is_loopback(server: str) -> bool:
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def extract_named_context(
    source: Path, *, context: str | None, server: str | None, dest: Path
) -> ClusterEntry:
    """Copy one explicitly named context of a user's kubeconfig into `dest`.

    This is the guard that keeps the suite off clusters it was not meant for:
    - the context must be named (`context`); the file's current-context and
      ``$KUBECONFIG`` are never used;
    - a cluster served from anywhere but loopback (kind and k3d serve on
      127.0.0.1) is refused unless `server` names its URL exactly;
    - when `server` is given, it must match the context's server.
    """
    if not context:
        raise UnsafeClusterError(
            f"--kubeconfig {source} was given without --kube-context: name the context to "
            "test against explicitly; the suite never uses the current context"
        )
    document = yaml.safe_load(source.read_text())
    if not isinstance(document, dict):
        raise UnsafeClusterError(f"{source} is not a kubeconfig")
    ctx = _named(document, "contexts", context, source)
    cluster = _named(document, "clusters", str(ctx.get("cluster")), source)
    user = _named(document, "users", str(ctx.get("user")), source)
    actual = str(cluster.get("server", ""))
    if server is not None and server.rstrip("/") != actual.rstrip("/"):
        raise UnsafeClusterError(
            f"context {context!r} points at {actual}, not at --kube-server {server}; refusing"
        )
    if server is None and not _is_loopback(actual):
        raise UnsafeClusterError(
            f"context {context!r} points at {actual}, which is not on this machine; the "
            f"tests create and delete objects there. If that is really meant, also pass "
            f"--kube-server {actual}"
        )
    base = source.resolve().parent
    cluster = _absolute_paths(cluster, ("certificate-authority",), base)
    user = _absolute_paths(user, ("client-certificate", "client-key", "tokenFile"), base)
    _write(dest, _document(context, cluster, user, ctx.get("namespace")))
    return ClusterEntry(server=actual, fields=cluster)
