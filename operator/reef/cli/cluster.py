"""The CLI's edge to the API server: the user's kubeconfig, reads, writes, one watch.

Credentials are found the way kubectl finds them: ``--kubeconfig``, else ``$KUBECONFIG``
(a colon-separated list), else ``~/.kube/config``; ``--context`` picks a context, else
the current one. The CLI is short-lived, so it uses the official client synchronously.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from reef.api import names

Body = dict[str, Any]

#: Labels the chart puts on the operator Deployment (charts/reef/templates/_helpers.tpl).
OPERATOR_SELECTOR = "app.kubernetes.io/part-of=reef,app.kubernetes.io/component=operator"


class CliError(RuntimeError):
    """Something the user can fix; the message says what. Exit code 2 (1 means unhealthy)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Which cluster and identity: as the user gave them on the command line."""

    kubeconfig: Path | None
    context: str | None
    namespace: str


def kubeconfig_paths(explicit: Path | None) -> list[Path]:
    if explicit is not None:
        return [explicit]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


class Cluster:
    """The API calls the CLI makes."""

    def __init__(self, target: Target) -> None:
        self.target = target
        configuration = client.Configuration()
        paths = kubeconfig_paths(target.kubeconfig)
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(paths[0]) if len(paths) == 1 else None,
                context=target.context,
                client_configuration=configuration,
            )
        except (config.ConfigException, OSError) as error:
            raise CliError(
                f"cannot use kubeconfig {':'.join(map(str, paths))}"
                f"{f' (context {target.context})' if target.context else ''}: {error}"
            ) from error
        self.api_client: Any = client.ApiClient(configuration)
        self.custom: Any = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.rbac = client.RbacAuthorizationV1Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    # MeshNetworks and MeshAgents

    def networks(self, only: str | None = None) -> list[Body]:
        if only is not None:
            try:
                return [self.network(only)]
            except ApiException as error:
                if error.status == 404:
                    raise CliError(f"MeshNetwork {only} does not exist (kubectl get mn)") from error
                raise
        listed = self.custom.list_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_NETWORK_PLURAL
        )
        return list(listed["items"])

    def network(self, name: str) -> Body:
        found: Body = self.custom.get_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_NETWORK_PLURAL, name
        )
        return found

    def agents(self, network: str | None = None) -> list[Body]:
        selector = {} if network is None else {"field_selector": f"spec.network={network}"}
        listed = self.custom.list_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, **selector
        )
        return list(listed["items"])

    def agent(self, name: str) -> Body | None:
        try:
            found: Body = self.custom.get_cluster_custom_object(
                names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def create_agent(self, body: Body) -> Body:
        created: Body = self.custom.create_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, body
        )
        return created

    def patch_agent(self, name: str, patch: Body) -> Body:
        patched: Body = self.custom.patch_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name, patch
        )
        return patched

    def delete_agent(self, name: str) -> bool:
        try:
            self.custom.delete_cluster_custom_object(
                names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def _agent_states(self, name: str, timeout: float) -> Iterator[Body | None]:
        """MeshAgent ``name`` as listed, then after each watch event (None: it is gone)."""
        selector = f"metadata.name={name}"
        deadline = time.monotonic() + timeout
        listed = self.custom.list_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, field_selector=selector
        )
        yield next(iter(listed["items"]), None)
        version = listed["metadata"]["resourceVersion"]
        while (remaining := deadline - time.monotonic()) > 0:
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self.custom.list_cluster_custom_object,
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                field_selector=selector,
                resource_version=version,
                timeout_seconds=max(1, int(remaining)),
            ):
                body = event["object"]
                version = body["metadata"]["resourceVersion"]
                yield None if event["type"] == "DELETED" else body

    def wait_for_agent(self, name: str, done: Callable[[Body], bool], timeout: float) -> Body:
        """Watch MeshAgent ``name`` until ``done(body)``; CliError at the deadline."""
        last: Body | None = None
        for body in self._agent_states(name, timeout):
            if body is None:
                if last is not None:
                    raise CliError(f"MeshAgent {name} was deleted while waiting for it")
                continue
            last = body
            if done(body):
                return body
        conditions = ((last or {}).get("status") or {}).get("conditions") or []
        said = "; ".join(
            f"{c.get('type')}={c.get('status')} {c.get('message', '')}" for c in conditions
        )
        raise CliError(
            f"MeshAgent {name} got no address within {timeout:.0f} s"
            f"{': ' + said if said else ''}; is the reef operator running"
            f" (kubectl -n {self.target.namespace} get deploy)?"
        )

    def wait_gone(self, name: str, timeout: float) -> None:
        """Watch until MeshAgent ``name`` no longer exists (its finalizer ran)."""
        for body in self._agent_states(name, timeout):
            if body is None:
                return
        raise CliError(
            f"MeshAgent {name} still exists after {timeout:.0f} s: its finalizer"
            f" {names.RELEASE_FINALIZER} waits for the reef operator to release the address"
        )

    # the operator

    def operator_deployments(self) -> list[Any]:
        return list(
            self.apps.list_namespaced_deployment(
                self.target.namespace, label_selector=OPERATOR_SELECTOR
            ).items
        )

    # cluster access for a kubeconfig of another identity

    def cluster_entry(self) -> Body:
        """The ``cluster`` mapping of the context in use, certificate data inlined."""
        context = self.target.context
        for path in kubeconfig_paths(self.target.kubeconfig):
            if not path.is_file():
                continue
            document = yaml.safe_load(path.read_text()) or {}
            name = context or document.get("current-context")
            entry = next(
                (c["context"] for c in document.get("contexts") or [] if c.get("name") == name),
                None,
            )
            if entry is None:
                continue
            cluster = next(
                (
                    c["cluster"]
                    for c in document.get("clusters") or []
                    if c.get("name") == entry.get("cluster")
                ),
                None,
            )
            if cluster is None:
                continue
            cluster = dict(cluster)
            ca_path = cluster.pop("certificate-authority", None)
            if ca_path:
                ca = Path(ca_path)
                if not ca.is_absolute():
                    ca = path.parent / ca
                cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
            return cluster
        raise CliError("cannot find the current context's cluster in the kubeconfig")
