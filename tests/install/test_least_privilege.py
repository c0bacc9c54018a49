"""The chart's identities, with real tokens: enough to do the job, and not one bit more.

The chart is installed with Helm (RBAC and the ValidatingAdmissionPolicy exactly as a
user gets them). The operator then runs as a process with a token of the chart's
operator ServiceAccount; "agents" are API clients holding tokens of the agent
ServiceAccount bound to Pods on Node objects, the way a DaemonSet Pod's projected token
is — so the API server puts the node name into the request, as in a real cluster.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import kubernetes.client
import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from reef.api import names
from tests.install.helm_release import Release
from tests.support.mesh import (
    MeshApi,
    addresses,
    all_allocated,
    condition,
    wait_for_agents,
    wait_for_objects,
)
from tests.support.mesh import random_public_key as public_key
from tests.support.operator_process import OperatorProcess
from tests.testbed.identities import (
    api_client_for_token,
    create_node,
    create_pod_on_node,
    create_service_account,
    kubeconfig_for_token,
    request_token,
)

FORBIDDEN = 403


@dataclass
class Agent:
    """An API client acting as the reef agent on one node."""

    node: str
    api: ApiClient

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def body(self, name: str | None = None, node_name: str | None = None) -> dict[str, Any]:
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.MESH_AGENT_KIND,
            "metadata": {"name": name or self.node, "finalizers": [names.RELEASE_FINALIZER]},
            "spec": {
                "network": "unused",
                "nodeName": node_name or self.node,
                "publicKey": public_key(),
                "endpoint": "198.18.0.10:51820",
            },
        }

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = cast(
            dict[str, Any],
            self.custom.create_cluster_custom_object(
                names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, body
            ),
        )
        return created

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        patched: dict[str, Any] = cast(
            dict[str, Any],
            self.custom.patch_cluster_custom_object(
                names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name, patch
            ),
        )
        return patched

    def apply_status(self, status: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of its own status fields, as the agent does: the conditions
        list merges by type, so the operator's Allocated condition stays untouched."""
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.MESH_AGENT_KIND,
            "metadata": {"name": self.node},
            "status": status,
        }
        applied = self.custom.patch_cluster_custom_object_status(
            names.GROUP,
            names.VERSION,
            names.MESH_AGENT_PLURAL,
            self.node,
            body,
            field_manager=names.AGENT_FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        return cast(dict[str, Any], applied)

    def patch_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the status (lists are replaced whole)."""
        patched = self.custom.patch_cluster_custom_object_status(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name, {"status": status}
        )
        return cast(dict[str, Any], patched)


def denied(call: Callable[[], object]) -> ApiException:
    """The API server's refusal of `call` (the test fails if it is accepted)."""
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value


def message(error: ApiException) -> str:
    return str(json.loads(error.body or "{}").get("message", error.body))


def policy_denial(error: ApiException, release: Release, text: str) -> None:
    """Assert `error` is our admission policy's 403 saying `text`.

    A write of extraAllowedIPs may meet the routes policy first: the API server runs
    admission policies in no fixed order and reports the first refusal. That one must then
    say that a cluster admin decides. Likewise the external-host policy for a host."""
    said = message(error)
    assert error.status == FORBIDDEN, said
    prefix = release.agent_account.removesuffix("-agent")
    if "extraAllowedIPs" in text and f"ValidatingAdmissionPolicy '{prefix}-routes." in said:
        assert "a cluster admin" in said, said
        return
    # An external host's write can meet the CLI's narrower external-host policy first; it
    # refuses the same writes (its own name and no nodeName) in its own words.
    if f"ValidatingAdmissionPolicy '{prefix}-external-host." in said:
        assert "reef-host-" in said or "external host" in said, said
        return
    assert f"ValidatingAdmissionPolicy '{release.agent_account}.mesh.reef.dev'" in said, said
    assert text in said, said


def ledger_denial(error: ApiException, release: Release, verb: str) -> None:
    """Assert `error` is the ledger policy's 403: it names the one writer of the ledger."""
    said = message(error)
    assert error.status == FORBIDDEN, said
    prefix = release.agent_account.removesuffix("-agent")
    assert f"ValidatingAdmissionPolicy '{prefix}-ledger.mesh.reef.dev'" in said, said
    assert "hold the IPAM ledger, which only the reef operator writes" in said, said
    assert f"a reef agent may not {verb} ConfigMap" in said, said


def rbac_denial(error: ApiException, verb: str, resource: str) -> None:
    said = message(error)
    assert error.status == FORBIDDEN, said
    assert f'cannot {verb} resource "{resource}"' in said, said


def dataplane_status(ready: str = "True") -> dict[str, Any]:
    now = "2025-01-01T00:00:00Z"
    return {
        "dataplane": {
            "backend": "userspace",
            "interface": "reef0",
            "listenPort": 51820,
            "peers": {"total": 0, "healthy": 0, "summary": "0/0"},
            "lastSync": now,
        },
        "conditions": [
            {
                "type": "Configured",
                "status": ready,
                "reason": "Configured",
                "message": "up",
                "lastTransitionTime": now,
            },
        ],
    }


def wait_for_policy_in_force(api: ApiClient, release: Release, timeout: float = 30.0) -> None:
    """A new ValidatingAdmissionPolicy takes effect a moment after it is created (the API
    server loads it through an informer). There is no event for that: probe with a
    dry-run write the policy must refuse (a token without a node) until it is refused."""
    token = request_token(api, release.namespace, release.agent_account)
    client = api_client_for_token(api, token)
    probe = Agent("policy-probe", client)
    ledger = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name="policy-probe")
    )
    core = kubernetes.client.CoreV1Api(client)
    try:
        # The member policy, then the ledger policy (the RBAC that lets the agent attempt
        # ledger writes is in place at once; only the policy refuses them).
        writes: list[Callable[[], object]] = [
            partial(
                probe.custom.create_cluster_custom_object,
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                probe.body(),
                dry_run="All",
            ),
            partial(core.create_namespaced_config_map, release.namespace, ledger, dry_run="All"),
        ]
        for write in writes:
            _until_refused_by_a_policy(write, timeout)
    finally:
        client.close()


def _until_refused_by_a_policy(write: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            write()
        except ApiException as error:
            if error.status == FORBIDDEN and "ValidatingAdmissionPolicy" in message(error):
                return
            raise
        if time.monotonic() > deadline:
            raise AssertionError(f"the admission policy was not in force after {timeout}s")
        # Back-off between probes: nothing to watch for a policy being loaded.
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


@pytest.fixture
def installed(release: Release, kube_api: ApiClient) -> Release:
    release.install()
    wait_for_policy_in_force(kube_api, release)
    return release


def _remove_quietly(call: Callable[[], object]) -> None:
    """Cleanup: what is already gone is fine."""
    try:
        call()
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def agents(installed: Release, kube_api: ApiClient) -> Iterator[Callable[[str], Agent]]:
    """``agents(label) -> Agent`` on a fresh Node; Nodes and MeshAgents are removed after."""
    made: list[Agent] = []
    token = secrets.token_hex(3)
    core = kubernetes.client.CoreV1Api(kube_api)

    def make(label: str) -> Agent:
        node = f"node-{label}-{token}"
        create_node(kube_api, node)
        pod = f"agent-{label}-{token}"
        uid = create_pod_on_node(
            kube_api,
            installed.namespace,
            pod,
            node_name=node,
            service_account=installed.agent_account,
        )
        bound = request_token(
            kube_api, installed.namespace, installed.agent_account, bound_pod=(pod, uid)
        )
        agent = Agent(node, api_client_for_token(kube_api, bound))
        made.append(agent)
        return agent

    yield make
    mesh = MeshApi(kube_api)
    for agent in made:
        _remove_quietly(
            partial(
                mesh.custom.patch_cluster_custom_object,
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                agent.node,
                {"metadata": {"finalizers": None}},
            )
        )
        _remove_quietly(partial(mesh.delete_agent, agent.node))
        _remove_quietly(partial(core.delete_node, agent.node))
        agent.api.close()


def test_operator_with_the_charts_service_account_does_its_whole_job(
    installed: Release,
    kube_api: ApiClient,
    kubeconfig: Path,
    agents: Callable[[str], Agent],
    tmp_path: Path,
) -> None:
    """Allocation, the ledger, MeshAgent and MeshNetwork statuses, Events: no admin rights."""
    token = request_token(kube_api, installed.namespace, installed.operator_account)
    operator_kubeconfig = kubeconfig_for_token(
        kubeconfig, token, tmp_path / "operator.kubeconfig", "reef-operator"
    )
    operator = OperatorProcess(operator_kubeconfig, tmp_path, namespace=installed.namespace).start()
    mesh = MeshApi(kube_api)
    try:
        agent = agents("a")
        body = agent.body()
        body["spec"]["network"] = installed.network
        agent.create(body)

        allocated = wait_for_agents(mesh, installed.network, all_allocated(1), timeout=60)
        [address] = addresses(allocated[agent.node])
        assert address.startswith("100.64.")
        allocated_condition = condition(allocated[agent.node], "Allocated")
        assert allocated_condition is not None
        assert allocated_condition["status"] == "True"
        owners = mesh.ledger_owners(installed.namespace, installed.network)
        assert owners[address]["name"] == agent.node

        # The agent reports its dataplane; the network counts it (operator's status write).
        reported = agent.apply_status(dataplane_status())
        assert condition(reported, "Allocated") == allocated_condition
        wait_for_objects(
            mesh,
            names.MESH_NETWORK_PLURAL,
            lambda objects: _ready(objects.get(installed.network)),
            field_selector=f"metadata.name={installed.network}",
        )
        # Release on deletion: the operator removes its finalizer after the ledger write.
        mesh.delete_agent(agent.node)
        wait_for_agents(mesh, installed.network, lambda objects: not objects, timeout=60)
        assert (
            mesh.ledger_owners(installed.namespace, installed.network)[address]["state"]
            == "released"
        )
    finally:
        operator.stop()
    log = operator.log()
    assert "Forbidden" not in log, log
    assert " 403" not in log, log


def _ready(network: dict[str, Any] | None) -> bool:
    found = condition(network or {}, "Ready")
    return found is not None and found["status"] == "True"


def test_agent_registers_and_reports_its_own_nodes_meshagent(
    agents: Callable[[str], Agent],
) -> None:
    agent = agents("a")
    created = agent.create(agent.body())
    assert created["metadata"]["finalizers"] == [names.RELEASE_FINALIZER]

    agent.patch(agent.node, {"spec": {"endpoint": "198.18.0.11:51820"}})
    reported = agent.apply_status(dataplane_status())

    assert reported["status"]["dataplane"]["backend"] == "userspace"
    assert condition(reported, "Configured") is not None


def test_agent_cannot_create_a_meshagent_named_after_another_node(
    installed: Release, agents: Callable[[str], Agent]
) -> None:
    agent, other = agents("a"), agents("b")
    error = denied(lambda: agent.create(agent.body(name=other.node, node_name=other.node)))
    policy_denial(error, installed, f"may only write MeshAgent {agent.node}, not {other.node}")


def test_agent_cannot_claim_another_nodes_name_in_spec(
    installed: Release, agents: Callable[[str], Agent]
) -> None:
    agent, other = agents("a"), agents("b")
    error = denied(lambda: agent.create(agent.body(node_name=other.node)))
    policy_denial(error, installed, f"whose spec.nodeName is {agent.node}")


def test_agent_cannot_modify_or_delete_another_nodes_meshagent(
    installed: Release, agents: Callable[[str], Agent], kube_api: ApiClient
) -> None:
    agent, other = agents("a"), agents("b")
    other.create(other.body())

    spec = denied(lambda: agent.patch(other.node, {"spec": {"endpoint": "198.18.0.66:1"}}))
    policy_denial(spec, installed, f"not {other.node}")
    status = denied(lambda: agent.patch_status(other.node, dataplane_status("False")))
    policy_denial(status, installed, f"not {other.node}")
    deletion = denied(
        lambda: agent.custom.delete_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, other.node
        )
    )
    policy_denial(deletion, installed, f"may only write MeshAgent {agent.node}, not {other.node}")
    policy_denial(deletion, installed, "is written by its own member and by cluster admins")
    assert MeshApi(kube_api).get_agent(other.node)["spec"]["endpoint"] == "198.18.0.10:51820"


def test_agent_cannot_delete_its_own_meshagent(
    installed: Release, agents: Callable[[str], Agent], kube_api: ApiClient
) -> None:
    """Deleting a member releases its address: that is for the garbage collector (the Node
    went) or an admin, never the member's own token."""
    agent = agents("a")
    agent.create(agent.body())
    deletion = denied(
        lambda: agent.custom.delete_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, agent.node
        )
    )
    policy_denial(deletion, installed, "may not delete MeshAgents")
    policy_denial(
        deletion, installed, f"or by a cluster admin (kubectl delete meshagent {agent.node})"
    )
    assert "deletionTimestamp" not in MeshApi(kube_api).get_agent(agent.node)["metadata"]


def test_agent_cannot_write_the_operators_status_fields(
    installed: Release, agents: Callable[[str], Agent]
) -> None:
    agent = agents("a")
    agent.create(agent.body())

    address = denied(lambda: agent.patch_status(agent.node, {"addresses": ["100.64.0.1"]}))
    policy_denial(address, installed, "status.addresses")
    when = denied(lambda: agent.patch_status(agent.node, {"allocatedAt": "2025-01-01T00:00:00Z"}))
    policy_denial(when, installed, "status.addresses, status.allocatedAt")
    allocated = {
        "conditions": [
            {
                "type": "Allocated",
                "status": "True",
                "reason": "Allocated",
                "message": "mine",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            },
        ]
    }
    condition_error = denied(lambda: agent.patch_status(agent.node, allocated))
    policy_denial(
        condition_error, installed, "the Allocated condition belongs to the reef operator"
    )
    finalizer = denied(lambda: agent.patch(agent.node, {"metadata": {"finalizers": None}}))
    policy_denial(finalizer, installed, "may not remove it")


def test_agent_cannot_touch_the_ledger(
    installed: Release, agents: Callable[[str], Agent], kube_api: ApiClient
) -> None:
    agent = agents("a")
    core = kubernetes.client.CoreV1Api(agent.api)
    listing = denied(lambda: core.list_namespaced_config_map(installed.namespace))
    rbac_denial(listing, "list", "configmaps")
    ledger = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(
            name=f"reef-ipam-{installed.network}",
            labels={names.LEDGER_COMPONENT_LABEL: names.LEDGER_COMPONENT},
        ),
        data={"100.64.0.1": "{}"},
    )
    creation = denied(lambda: core.create_namespaced_config_map(installed.namespace, ledger))
    ledger_denial(creation, installed, "create")

    # A ledger shard that exists (written here by the admin) can be neither edited nor
    # deleted with the agent's token, and stays as it was.
    admin = kubernetes.client.CoreV1Api(kube_api)
    admin.create_namespaced_config_map(installed.namespace, ledger)
    name = f"reef-ipam-{installed.network}"
    taken = {"data": {"100.64.0.1": '{"owner": "node-a"}'}}
    edit = denied(lambda: core.patch_namespaced_config_map(name, installed.namespace, taken))
    ledger_denial(edit, installed, "update")
    removal = denied(lambda: core.delete_namespaced_config_map(name, installed.namespace))
    ledger_denial(removal, installed, "delete")
    assert admin.read_namespaced_config_map(name, installed.namespace).data == ledger.data
    network = denied(
        lambda: agent.custom.patch_cluster_custom_object_status(
            names.GROUP,
            names.VERSION,
            names.MESH_NETWORK_PLURAL,
            installed.network,
            {"status": {"allocated": 0}},
        )
    )
    rbac_denial(network, "patch", "meshnetworks/status")


def test_agent_token_without_a_node_cannot_write_any_meshagent(
    installed: Release, kube_api: ApiClient
) -> None:
    """A plain token of the agent account (not bound to a Pod on a node) is refused."""
    token = request_token(kube_api, installed.namespace, installed.agent_account)
    client = api_client_for_token(kube_api, token)
    try:
        agent = Agent("node-without-token-binding", client)
        error = denied(lambda: agent.create(agent.body()))
        policy_denial(error, installed, "this token carries no node name")
    finally:
        client.close()


# --- a node describes only itself (docs/security.md) ------------------------------------

ADMIN_ONLY = "only cluster admins set it"

ADMIN_FIELDS_ON_CREATE = [
    pytest.param({"role": "Hub"}, "spec.role is admin-owned", id="make-itself-hub"),
    pytest.param(
        {"extraAllowedIPs": ["10.244.2.0/24"]},
        "spec.extraAllowedIPs is admin-owned",
        id="route-another-nodes-pod-cidr",
    ),
    pytest.param(
        {"extraAllowedIPs": ["10.0.0.0/24"]},
        "spec.extraAllowedIPs is admin-owned",
        id="route-the-service-range",
    ),
    pytest.param(
        {"extraAllowedIPs": ["0.0.0.0/0"]}, "spec.extraAllowedIPs is admin-owned", id="route-all"
    ),
    pytest.param(
        {"requestedAddresses": ["100.64.0.7"]},
        "spec.requestedAddresses is admin-owned",
        id="request-an-address",
    ),
    pytest.param(
        {"persistentKeepalive": 1}, "spec.persistentKeepalive is admin-owned", id="keepalive"
    ),
]


@pytest.mark.parametrize(("spec", "refusal"), ADMIN_FIELDS_ON_CREATE)
def test_agent_cannot_register_with_an_admin_owned_field(
    installed: Release, agents: Callable[[str], Agent], spec: dict[str, Any], refusal: str
) -> None:
    agent = agents("a")
    body = agent.body()
    body["spec"].update(spec)
    error = denied(lambda: agent.create(body))
    policy_denial(error, installed, refusal)
    policy_denial(error, installed, f"the reef agent on node {agent.node} may not")
    policy_denial(error, installed, ADMIN_ONLY)


def test_agent_cannot_change_admin_owned_fields_but_still_registers_and_reports(
    installed: Release, agents: Callable[[str], Agent], kube_api: ApiClient
) -> None:
    agent = agents("a")
    agent.create(agent.body())
    admin = MeshApi(kube_api)
    # An admin made this node a hub with a keepalive override: the node cannot undo it.
    admin.patch_agent(agent.node, {"spec": {"role": "Hub", "persistentKeepalive": 10}})

    for spec, refusal in [
        ({"role": "Agent"}, "spec.role is admin-owned"),
        ({"extraAllowedIPs": ["10.244.2.0/24"]}, "spec.extraAllowedIPs is admin-owned"),
        ({"extraAllowedIPs": ["0.0.0.0/0"]}, "spec.extraAllowedIPs is admin-owned"),
        ({"persistentKeepalive": None}, "spec.persistentKeepalive is admin-owned"),
        ({"persistentKeepalive": 1}, "spec.persistentKeepalive is admin-owned"),
    ]:
        error = denied(partial(agent.patch, agent.node, {"spec": spec}))
        policy_denial(error, installed, refusal)
        policy_denial(error, installed, ADMIN_ONLY)

    # requestedAddresses is immutable for everyone once created (the CRD says so first).
    address = denied(
        partial(agent.patch, agent.node, {"spec": {"requestedAddresses": ["100.64.0.7"]}})
    )
    assert address.status == 422, message(address)
    assert "requestedAddresses is immutable" in message(address)
    assert "a cluster admin deletes the MeshAgent" in message(address), message(address)

    # What the node says about itself stays writable, and so does its status.
    patched = agent.patch(agent.node, {"spec": {"endpoint": "198.18.0.12:51820"}})
    assert patched["spec"]["role"] == "Hub"
    assert patched["spec"]["persistentKeepalive"] == 10
    reported = agent.apply_status(dataplane_status())
    assert condition(reported, "Configured") is not None


def test_agent_cannot_change_its_node_name_nor_create_a_second_meshagent(
    installed: Release, agents: Callable[[str], Agent]
) -> None:
    agent, other = agents("a"), agents("b")
    agent.create(agent.body())

    moved = denied(lambda: agent.patch(agent.node, {"spec": {"nodeName": other.node}}))
    assert moved.status == 422, message(moved)
    assert "nodeName cannot change once set" in message(moved), message(moved)
    assert "a cluster admin deletes the MeshAgent" in message(moved), message(moved)
    dropped = denied(lambda: agent.patch(agent.node, {"spec": {"nodeName": None}}))
    policy_denial(dropped, installed, f"whose spec.nodeName is {agent.node}")
    second = denied(lambda: agent.create(agent.body(name=f"{agent.node}-2")))
    policy_denial(second, installed, f"may only write MeshAgent {agent.node}, not {agent.node}-2")
    policy_denial(second, installed, "is written by its own member and by cluster admins")


def test_agent_cannot_give_another_node_routes_or_a_role(
    installed: Release, agents: Callable[[str], Agent], kube_api: ApiClient
) -> None:
    agent, other = agents("a"), agents("b")
    other.create(other.body())

    for spec in ({"extraAllowedIPs": ["10.244.1.0/24"]}, {"role": "Hub"}):
        error = denied(partial(agent.patch, other.node, {"spec": spec}))
        policy_denial(error, installed, f"may only write MeshAgent {agent.node}, not {other.node}")
    spec = MeshApi(kube_api).get_agent(other.node)["spec"]
    assert spec["role"] == "Agent"
    assert "extraAllowedIPs" not in spec


def _host_identity(
    kube_api: ApiClient, release: Release, name: str
) -> tuple[Agent, Callable[[], None]]:
    """An external host's identity as SHARED by the CLI (ServiceAccount reef-host-<name> in
    the release namespace). Its RBAC here is the agent's ClusterRole: the same verbs, so
    only the admission policy stands between it and other members' objects."""
    account = f"reef-host-{name}"
    create_service_account(kube_api, release.namespace, account)
    rbac = kubernetes.client.RbacAuthorizationV1Api(kube_api)
    binding = f"{release.fullname}-{account}"
    rbac.create_cluster_role_binding(
        kubernetes.client.V1ClusterRoleBinding(
            metadata=kubernetes.client.V1ObjectMeta(name=binding),
            role_ref=kubernetes.client.V1RoleRef(
                api_group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                name=release.agent_account,
            ),
            subjects=[
                kubernetes.client.RbacV1Subject(
                    kind="ServiceAccount", name=account, namespace=release.namespace
                )
            ],
        )
    )
    client = api_client_for_token(kube_api, request_token(kube_api, release.namespace, account))

    def cleanup() -> None:
        client.close()
        _remove_quietly(partial(rbac.delete_cluster_role_binding, binding))

    return Agent(name, client), cleanup


def test_an_external_host_identity_writes_only_its_own_nodeless_meshagent(
    installed: Release, agents: Callable[[str], Agent], kube_api: ApiClient
) -> None:
    node = agents("b")
    node.create(node.body())
    name = f"laptop-{secrets.token_hex(3)}"
    host, cleanup = _host_identity(kube_api, installed, name)
    admin = MeshApi(kube_api)
    try:
        body = host.body()
        del body["spec"]["nodeName"]
        own_node = denied(lambda: host.create(host.body(node_name=node.node)))
        policy_denial(own_node, installed, "may only write a MeshAgent without spec.nodeName")
        hub = denied(lambda: host.create({**body, "spec": {**body["spec"], "role": "Hub"}}))
        policy_denial(hub, installed, f"the external host {name} (ServiceAccount reef-host-")
        policy_denial(hub, installed, "spec.role is admin-owned")
        host.create(body)
        host.patch(name, {"spec": {"endpoint": "198.18.0.13:51820"}})
        host.apply_status(dataplane_status())
        routes = denied(lambda: host.patch(name, {"spec": {"extraAllowedIPs": ["10.9.0.0/24"]}}))
        policy_denial(routes, installed, "spec.extraAllowedIPs is admin-owned")
        other = denied(lambda: host.patch(node.node, {"spec": {"endpoint": "198.18.0.66:1"}}))
        policy_denial(other, installed, f"may only write MeshAgent {name}, not {node.node}")
    finally:
        cleanup()
        _remove_quietly(
            partial(
                admin.custom.patch_cluster_custom_object,
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                name,
                {"metadata": {"finalizers": None}},
            )
        )
        _remove_quietly(partial(admin.delete_agent, name))


def _set_allowlist(admin: MeshApi, network: str, prefixes: list[str]) -> None:
    admin.custom.patch_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.MESH_NETWORK_PLURAL,
        network,
        {"spec": {"routablePrefixes": prefixes}},
    )


def verdict_eventually(
    call: Callable[[], object], policy: str, *, admitted: bool, timeout: float = 30.0
) -> None:
    """A new policy, or a changed parameter of one (a MeshNetwork), takes effect a moment
    later: the API server loads them through informers, with no event to watch. Repeat
    the dry-run ``call`` until ``policy`` admits it (or refuses it, ``admitted=False``)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            call()
            verdict = True
        except ApiException as error:
            if error.status != FORBIDDEN or policy not in message(error):
                raise
            verdict = False
        if verdict == admitted:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{policy}: still {'refused' if admitted else 'admitted'}")
        # Back-off between probes: nothing to watch for a policy being loaded.
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def routes_policy_sees(admin: MeshApi, agent: str, extras: list[str], *, admitted: bool) -> None:
    """Until the routes policy admits (or refuses) ``extras`` on MeshAgent ``agent``."""
    dry_run = partial(
        admin.custom.patch_cluster_custom_object,
        names.GROUP,
        names.VERSION,
        names.MESH_AGENT_PLURAL,
        agent,
        {"spec": {"extraAllowedIPs": extras}},
        dry_run="All",
    )
    verdict_eventually(dry_run, "-routes.mesh.reef.dev", admitted=admitted)


def test_admins_route_only_inside_the_networks_allowlist(
    installed: Release, kube_api: ApiClient, agents: Callable[[str], Agent]
) -> None:
    """The routes policy binds everyone, admins included; the CRD keeps the pool out of
    the allowlist; a narrowed allowlist never blocks a member's other writes."""
    release = installed
    admin = MeshApi(kube_api)
    _set_allowlist(admin, release.network, ["10.9.0.0/16"])
    agent = agents("a")
    body = agent.body()
    body["spec"]["network"] = release.network
    agent.create(body)
    routes_policy_sees(admin, agent.node, ["10.9.3.0/24"], admitted=True)
    routes_policy_sees(admin, agent.node, ["10.8.0.0/24"], admitted=False)

    admin.patch_agent(agent.node, {"spec": {"extraAllowedIPs": ["10.9.3.0/24"]}})
    outside = denied(
        lambda: admin.patch_agent(agent.node, {"spec": {"extraAllowedIPs": ["10.8.0.0/24"]}})
    )
    said = message(outside)
    assert outside.status == FORBIDDEN, said
    assert f"'{release.fullname}-routes.mesh.reef.dev'" in said, said
    assert "10.8.0.0/24" in said, said
    assert f"outside spec.routablePrefixes of MeshNetwork {release.network} [10.9.0.0/16]" in said
    everything = denied(
        lambda: admin.patch_agent(agent.node, {"spec": {"extraAllowedIPs": ["0.0.0.0/0"]}})
    )
    assert "0.0.0.0/0" in message(everything), message(everything)

    pool = denied(partial(_set_allowlist, admin, release.network, ["10.9.0.0/16", "100.64.0.0/8"]))
    assert pool.status == 422, message(pool)
    assert "routablePrefixes must not overlap the pool" in message(pool)

    _set_allowlist(admin, release.network, ["172.16.0.0/12"])
    # 10.9.3.0/24 is no longer allowed (agents drop it and say so); writes that leave it
    # alone go through.
    patched = agent.patch(agent.node, {"spec": {"endpoint": "198.18.0.14:51820"}})
    assert patched["spec"]["extraAllowedIPs"] == ["10.9.3.0/24"]


def test_the_operators_token_cannot_rewrite_any_spec(
    installed: Release, kube_api: ApiClient, agents: Callable[[str], Agent]
) -> None:
    """RBAC lets the operator patch MeshAgents and MeshNetworks (for finalizers); the
    operator policy keeps a stolen operator token from changing a role, a route or the
    allowlist."""
    agent = agents("a")
    agent.create(agent.body())
    token = request_token(kube_api, installed.namespace, installed.operator_account)
    client = api_client_for_token(kube_api, token)
    operator = kubernetes.client.CustomObjectsApi(client)
    refusal = "the reef operator may change the metadata (finalizers) and status"
    try:
        verdict_eventually(
            partial(
                operator.patch_cluster_custom_object,
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                agent.node,
                {"spec": {"role": "Hub"}},
                dry_run="All",
            ),
            f"{installed.operator_account}.mesh.reef.dev",
            admitted=False,
        )
        for plural, name, spec in [
            (names.MESH_AGENT_PLURAL, agent.node, {"role": "Hub"}),
            (names.MESH_AGENT_PLURAL, agent.node, {"endpoint": "198.18.0.66:51820"}),
            (names.MESH_NETWORK_PLURAL, installed.network, {"routablePrefixes": ["10.0.0.0/8"]}),
        ]:
            error = denied(
                partial(
                    operator.patch_cluster_custom_object,
                    names.GROUP,
                    names.VERSION,
                    plural,
                    name,
                    {"spec": spec},
                )
            )
            said = message(error)
            assert error.status == FORBIDDEN, said
            assert f"'{installed.operator_account}.mesh.reef.dev'" in said, said
            assert refusal in said, said
        # Its own job, a finalizer in metadata, still goes through.
        operator.patch_cluster_custom_object(
            names.GROUP,
            names.VERSION,
            names.MESH_AGENT_PLURAL,
            agent.node,
            {"metadata": {"finalizers": None}},
        )
    finally:
        client.close()
