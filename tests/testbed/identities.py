"""Real, least-privileged identities for tests: service-account tokens from the API.

A token here is issued by the API server through the TokenRequest API, and
RBAC restricts it exactly as it would restrict reef's operator or agent. A
token *bound to a Pod* that has ``spec.nodeName`` also carries that node's
name in the user's extra info (``authentication.kubernetes.io/node-name``),
which is what lets a ValidatingAdmissionPolicy tie an agent to its node.

There is no kubelet in the bed: the Node and Pod made here are API objects
only, which is all the API server needs to issue and check such a token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tests.testbed.kubeconfig import write_token_kubeconfig

NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
"""Key of the user's extra info that carries the node name of a pod-bound token."""

PLACEHOLDER_IMAGE = "reef.invalid/never-runs:0"
"""Image of the stand-in Pods; nothing ever pulls it (there is no kubelet)."""


@dataclass(frozen=True)
class NodeBoundToken:
    """A service-account token bound to a Pod that is bound to a Node."""

    token: str
    namespace: str
    service_account: str
    pod: str
    node: str


def _create_ignoring_conflict(create: Callable[..., object], *args: object) -> None:
    try:
        create(*args)
    except ApiException as error:
        if error.status != 409:
            raise


def create_service_account(api: ApiClient, namespace: str, name: str) -> None:
    """Create ServiceAccount `namespace/name` (no error if it exists)."""
    core = kubernetes.client.CoreV1Api(api)
    body = kubernetes.client.V1ServiceAccount(
        metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=namespace)
    )
    _create_ignoring_conflict(core.create_namespaced_service_account, namespace, body)


def request_token(
    api: ApiClient,
    namespace: str,
    service_account: str,
    *,
    bound_pod: tuple[str, str] | None = None,
    audiences: tuple[str, ...] = (),
    expiration_seconds: int = 3600,
) -> str:
    """A fresh token for the service account, via the TokenRequest API.

    `bound_pod` is ``(name, uid)`` of a Pod in the same namespace: the token
    is then valid only while that Pod exists. Empty `audiences` means the API
    server's own audience.
    """
    core = kubernetes.client.CoreV1Api(api)
    bound = None
    if bound_pod is not None:
        bound = kubernetes.client.V1BoundObjectReference(
            api_version="v1", kind="Pod", name=bound_pod[0], uid=bound_pod[1]
        )
    body = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(
            audiences=list(audiences),
            expiration_seconds=expiration_seconds,
            bound_object_ref=bound,
        )
    )
    response = core.create_namespaced_service_account_token(service_account, namespace, body)
    if response.status is None or not response.status.token:
        raise RuntimeError(f"TokenRequest for {namespace}/{service_account} returned no token")
    return str(response.status.token)


def create_node(api: ApiClient, name: str, labels: dict[str, str] | None = None) -> None:
    """Create a Node object `name` (no error if it exists). No kubelet backs it."""
    core = kubernetes.client.CoreV1Api(api)
    body = kubernetes.client.V1Node(
        metadata=kubernetes.client.V1ObjectMeta(name=name, labels=labels or {})
    )
    _create_ignoring_conflict(core.create_node, body)


def create_pod_on_node(
    api: ApiClient, namespace: str, name: str, *, node_name: str, service_account: str
) -> str:
    """Create a Pod already bound to `node_name`, running as `service_account`; its UID."""
    core = kubernetes.client.CoreV1Api(api)
    body = kubernetes.client.V1Pod(
        metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=namespace),
        spec=kubernetes.client.V1PodSpec(
            node_name=node_name,
            service_account_name=service_account,
            containers=[kubernetes.client.V1Container(name="main", image=PLACEHOLDER_IMAGE)],
        ),
    )
    pod = core.create_namespaced_pod(namespace, body)
    if pod.metadata is None or not pod.metadata.uid:
        raise RuntimeError(f"created Pod {namespace}/{name} has no UID")
    return str(pod.metadata.uid)


def bind_pod_to_node(api: ApiClient, namespace: str, pod: str, node_name: str) -> None:
    """Bind a pending Pod to a Node through the Binding subresource, as a scheduler would.

    The bed has no scheduler: a DaemonSet's Pods are created but stay
    unbound. Binding one makes it look scheduled, e.g. to bind a token to it.
    """
    core = kubernetes.client.CoreV1Api(api)
    body = kubernetes.client.V1Binding(
        metadata=kubernetes.client.V1ObjectMeta(name=pod),
        target=kubernetes.client.V1ObjectReference(api_version="v1", kind="Node", name=node_name),
    )
    # The generated client cannot decode the (empty) Status it gets back;
    # the raw response is enough: errors still raise ApiException.
    core.create_namespaced_pod_binding(pod, namespace, body, _preload_content=False)


def node_bound_token(
    api: ApiClient, namespace: str, service_account: str, node_name: str, *, pod_name: str
) -> NodeBoundToken:
    """A token of `service_account` that the API server ties to node `node_name`.

    Creates (as the admin `api`) the ServiceAccount and the Node if missing,
    and a Pod `pod_name` on that node running as the account; the token is
    bound to that Pod. Delete the Pod to revoke the token; the caller owns
    the Node's cleanup (Nodes are cluster-scoped).
    """
    create_service_account(api, namespace, service_account)
    create_node(api, node_name)
    pod_uid = create_pod_on_node(
        api, namespace, pod_name, node_name=node_name, service_account=service_account
    )
    token = request_token(api, namespace, service_account, bound_pod=(pod_name, pod_uid))
    return NodeBoundToken(
        token=token,
        namespace=namespace,
        service_account=service_account,
        pod=pod_name,
        node=node_name,
    )


def api_client_for_token(admin: ApiClient, token: str) -> ApiClient:
    """An ApiClient that talks to the same server as `admin`, as the token's user."""
    source = admin.configuration
    config = kubernetes.client.Configuration()
    config.host = source.host
    config.ssl_ca_cert = source.ssl_ca_cert
    config.verify_ssl = source.verify_ssl
    config.tls_server_name = source.tls_server_name
    config.api_key = {"authorization": f"Bearer {token}"}
    return ApiClient(config)


def kubeconfig_for_token(admin_kubeconfig: Path, token: str, dest: Path, name: str) -> Path:
    """A kubeconfig at `dest` for the token, to the cluster of `admin_kubeconfig`.

    For processes under test (the operator, an agent) started with
    ``KUBECONFIG=dest``: they then run with exactly the token's rights.
    """
    return write_token_kubeconfig(dest, like=admin_kubeconfig, name=name, token=token)
