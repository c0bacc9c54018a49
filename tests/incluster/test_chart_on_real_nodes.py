"""The chart as users run it: ``helm install`` onto real nodes, then the mesh works.

One release for the module, tests in the order a cluster lives: install, use, lose the
operator pod, grow by a node, roll the agents, try to misuse an agent's token. Every
wait is a watch (MeshAgents) or kubectl/helm's own wait, with a deadline.
"""

from __future__ import annotations

import itertools
import json
import secrets
import textwrap
from collections.abc import Iterator

import kubernetes.config
import pytest
from kubernetes.client import ApiClient

from tests.incluster.realcluster import NAMESPACE, RELEASE, RealCluster, healthy_mesh
from tests.support.mesh import MESH_AGENT_COLUMNS, Body, MeshApi, addresses, wait_for_objects

NETWORK = "default"
pytestmark = pytest.mark.incluster


def _mesh_address(body: Body) -> str:
    return addresses(body)[0]


@pytest.fixture(scope="module")
def mesh_api(real_cluster: RealCluster) -> Iterator[MeshApi]:
    client: ApiClient = kubernetes.config.new_client_from_config(
        config_file=str(real_cluster.kubectl.kubeconfig), context=real_cluster.kubectl.context
    )
    try:
        yield MeshApi(client)
    finally:
        client.close()


@pytest.fixture(scope="module")
def release(real_cluster: RealCluster) -> Iterator[RealCluster]:
    real_cluster.install()
    try:
        yield real_cluster
    finally:
        real_cluster.uninstall()


def _wait_healthy(mesh_api: MeshApi, nodes: list[str], timeout: float = 120) -> dict[str, Body]:
    return wait_for_objects(
        mesh_api,
        "meshagents",
        healthy_mesh(nodes),
        timeout=timeout,
        field_selector=f"spec.network={NETWORK}",
    )


def _assert_all_pairs_ping(cluster: RealCluster, agents: dict[str, Body], nodes: list[str]) -> None:
    failures = [
        f"{source} -> {target} ({_mesh_address(agents[target])})"
        for source, target in itertools.permutations(nodes, 2)
        if not cluster.pings(source, _mesh_address(agents[target]))
    ]
    if failures:
        dumps = "\n".join(cluster.dataplane_dump(node) for node in nodes)
        pytest.fail(f"no ping over the mesh: {failures}\n{dumps}")


def test_helm_install_gives_every_node_a_ready_mesh_member(
    release: RealCluster, mesh_api: MeshApi
) -> None:
    cluster = release
    nodes = cluster.node_names()
    deployment = json.loads(
        cluster.kubectl(
            "get", "deployment", "-n", NAMESPACE, f"{RELEASE}-operator", "-o", "json"
        ).stdout
    )
    available = {c["type"]: c["status"] for c in deployment["status"].get("conditions", [])}
    assert available.get("Available") == "True"
    daemonset = json.loads(
        cluster.kubectl(
            "get", "daemonset", "-n", NAMESPACE, f"{RELEASE}-agent", "-o", "json"
        ).stdout
    )["status"]
    assert daemonset["desiredNumberScheduled"] == len(nodes)
    assert daemonset["numberReady"] == len(nodes)
    agent_pods = cluster.pods("agent")
    assert sorted(p["spec"]["nodeName"] for p in agent_pods) == nodes
    for pod in agent_pods:
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True", pod["metadata"]["name"]
        # Ready comes from /readyz, i.e. the interface is configured: the probe is there.
        probe = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]
        assert probe["path"] == "/readyz"

    agents = _wait_healthy(mesh_api, nodes)
    # A pod that came up only after crashing (the in-cluster login bug did: LoginError,
    # restart, luck) is not an install that works.
    for pod in [*cluster.pods("operator"), *agent_pods]:
        restarts = {c["name"]: c["restartCount"] for c in pod["status"]["containerStatuses"]}
        assert set(restarts.values()) == {0}, f"{pod['metadata']['name']} restarted: {restarts}"
    table = cluster.kubectl("get", "ma", "-o", "wide").stdout.splitlines()
    assert table[0].split() == MESH_AGENT_COLUMNS
    assert len(table) == len(nodes) + 1
    for row in table[1:]:
        assert f"{len(nodes) - 1}/{len(nodes) - 1}" in row.split()
    _assert_all_pairs_ping(cluster, agents, nodes)
    assert "Phase:          Succeeded" in cluster.helm("test", RELEASE, "-n", NAMESPACE).stdout


def test_a_replaced_operator_pod_changes_no_address_and_serves_a_new_node(
    release: RealCluster, mesh_api: MeshApi
) -> None:
    cluster = release
    nodes = cluster.node_names()
    before = {n: addresses(b) for n, b in _wait_healthy(mesh_api, nodes).items()}
    (old,) = cluster.pods("operator")
    cluster.kubectl("delete", "pod", "-n", NAMESPACE, old["metadata"]["name"], "--wait=true")
    cluster.kubectl(
        "rollout", "status", "-n", NAMESPACE, f"deployment/{RELEASE}-operator", "--timeout=120s"
    )
    (new,) = [p for p in cluster.pods("operator") if not p["metadata"].get("deletionTimestamp")]
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    if not cluster.can_add_nodes:
        pytest.skip("this cluster cannot add a node on demand; the operator part passed")
    joined = cluster.add_node()
    grown = sorted([*nodes, joined])
    agents = _wait_healthy(mesh_api, grown, timeout=180)
    assert {n: addresses(agents[n]) for n in nodes} == before, "an address moved"
    assert addresses(agents[joined]), "the new node got no address"
    assert addresses(agents[joined])[0] not in {a for v in before.values() for a in v}
    _assert_all_pairs_ping(cluster, agents, grown)


def test_a_rolling_upgrade_replaces_every_agent_and_keeps_keys_and_addresses(
    release: RealCluster, mesh_api: MeshApi
) -> None:
    cluster = release
    nodes = cluster.node_names()
    before = _wait_healthy(mesh_api, nodes)
    identity = {n: (b["spec"]["publicKey"], addresses(b)) for n, b in before.items()}
    old_pods = {p["metadata"]["uid"] for p in cluster.pods("agent")}
    cluster.upgrade(
        "--set-string", f"agent.podAnnotations.reef\\.test/rollout={secrets.token_hex(4)}"
    )
    cluster.kubectl(
        "rollout", "status", "-n", NAMESPACE, f"daemonset/{RELEASE}-agent", "--timeout=240s"
    )
    new_pods = [p for p in cluster.pods("agent") if not p["metadata"].get("deletionTimestamp")]
    assert len(new_pods) == len(nodes)
    assert not old_pods & {p["metadata"]["uid"] for p in new_pods}, "an agent pod was kept"
    after = _wait_healthy(mesh_api, nodes, timeout=180)
    assert {n: (b["spec"]["publicKey"], addresses(b)) for n, b in after.items()} == identity
    _assert_all_pairs_ping(cluster, after, nodes)


_TRY_WRITES = textwrap.dedent(
    """
    import json, sys
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    config.load_incluster_config()
    api = client.CustomObjectsApi()
    own, other = sys.argv[1], sys.argv[2]
    patch = {"spec": {"endpoint": "192.0.2.1:51820"}}
    results = {}
    for label, name in (("own", own), ("other", other)):
        try:
            api.patch_cluster_custom_object(
                "mesh.reef.dev", "v1alpha1", "meshagents", name, patch, dry_run="All"
            )
            results[label] = {"allowed": True}
        except ApiException as error:
            results[label] = {"allowed": False, "status": error.status, "body": error.body}
    print(json.dumps(results))
    """
)


def test_an_agent_pods_own_token_cannot_write_another_nodes_meshagent(
    release: RealCluster, mesh_api: MeshApi
) -> None:
    cluster = release
    nodes = cluster.node_names()
    _wait_healthy(mesh_api, nodes)
    pod = next(p for p in cluster.pods("agent") if p["spec"]["nodeName"] == nodes[0])
    result = cluster.exec_in(
        pod["metadata"]["name"], "python3", "-c", _TRY_WRITES, nodes[0], nodes[1]
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["own"] == {"allowed": True}, outcome
    assert outcome["other"]["allowed"] is False, outcome
    # Denied by the admission policy (reason Forbidden), naming the node the token is for.
    assert outcome["other"]["status"] == 403, outcome
    assert f"node {nodes[0]}" in outcome["other"]["body"], outcome
