"""A least-privilege identity for an external host that runs ``reef agent`` itself.

ServiceAccount ``reef-host-<member>`` in the reef release namespace, bound by a
ClusterRoleBinding of the same name to the chart's ClusterRole for external hosts.
RBAC lets it write MeshAgents (and Events in ``default``, through a RoleBinding to the
chart's ``<role>-events`` Role); the chart's ValidatingAdmissionPolicy
(admission-policy-external-hosts.yaml) narrows that to the MeshAgent ``<member>``
with an empty ``spec.nodeName`` — the user name itself says which member it is.
"""

from __future__ import annotations

import datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reef.api.names import EXTERNAL_HOST_ACCOUNT_PREFIX
from reef.cli.cluster import Body, CliError, Cluster

#: Where Events about cluster-scoped objects live; the chart's ``<role>-events`` Role is there.
EVENTS_NAMESPACE = "default"


def host_account(member: str) -> str:
    return f"{EXTERNAL_HOST_ACCOUNT_PREFIX}{member}"


def host_user(namespace: str, member: str) -> str:
    return f"system:serviceaccount:{namespace}:{host_account(member)}"


def host_kubeconfig(cluster: Body, member: str, token: str) -> Body:
    """A kubeconfig with one context: ``cluster`` (as the admin's) and the host's token."""
    user = host_account(member)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "reef", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "reef", "user": user}}],
        "current-context": user,
    }


def _create_or_keep(create: Any, *args: Any) -> None:
    try:
        create(*args)
    except ApiException as error:
        if error.status != 409:
            raise


def ensure_identity(
    cluster: Cluster, member: str, role: str, token_seconds: int
) -> tuple[str, int | None]:
    """Create (or keep) the account and its binding; a fresh token and its lifetime (s)."""
    namespace = cluster.target.namespace
    name = host_account(member)
    try:
        cluster.rbac.read_cluster_role(role)
    except ApiException as error:
        if error.status != 404:
            raise
        raise CliError(
            f"ClusterRole {role} does not exist: install the reef chart, or name its role for"
            " external hosts with --host-role <release>-external-host"
        ) from error
    labels = {"app.kubernetes.io/part-of": "reef", "app.kubernetes.io/component": "external-host"}
    _create_or_keep(
        cluster.core.create_namespaced_service_account,
        namespace,
        client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name, labels=labels)),
    )
    _create_or_keep(
        cluster.rbac.create_cluster_role_binding,
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        ),
    )
    _create_or_keep(
        cluster.rbac.create_namespaced_role_binding,
        EVENTS_NAMESPACE,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=f"{name}-events", labels=labels),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=f"{role}-events"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        ),
    )
    issued = cluster.core.create_namespaced_service_account_token(
        name,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=token_seconds)
        ),
    )
    status: Any = issued.status
    seconds = None
    if status.expiration_timestamp is not None:
        seconds = int(
            (status.expiration_timestamp - datetime.datetime.now(datetime.UTC)).total_seconds()
        )
    return str(status.token), seconds


def remove_identity(cluster: Cluster, member: str) -> bool:
    """Delete the account and its binding; whether there was anything to delete."""
    name = host_account(member)
    removed = False
    for delete, args in (
        (cluster.rbac.delete_cluster_role_binding, (name,)),
        (cluster.rbac.delete_namespaced_role_binding, (f"{name}-events", EVENTS_NAMESPACE)),
        (cluster.core.delete_namespaced_service_account, (name, cluster.target.namespace)),
    ):
        try:
            delete(*args)
            removed = True
        except ApiException as error:
            if error.status != 404:
                raise
    return removed
