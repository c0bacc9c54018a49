"""A node describes only itself: routes need the admin's allowlist, and a hostile node
with its real agent token cannot steer anyone else's traffic (docs/security.md).

The chart is installed with Helm for its RBAC and admission policies (the bed has no
kubelet, so its DaemonSet and Deployment never run); the agents are the bed's namespace
nodes. The hostile node's agent runs with a token of the chart's agent ServiceAccount
bound to a Pod on its Node, exactly what a DaemonSet Pod holds.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import select
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client import ApiClient

from reef.api import names
from tests.agent.bed import AgentBed
from tests.agent.test_mesh import mesh_address, ready_with_peers
from tests.install.helm_release import Release, bed_values
from tests.install.test_least_privilege import (
    Agent,
    dataplane_status,
    denied,
    ledger_denial,
    message,
    policy_denial,
    routes_policy_sees,
    wait_for_policy_in_force,
)
from tests.support.mesh import Body, MeshApi, condition, wait_for_agents, wait_for_event
from tests.support.mesh import wait_for_objects as wait_for
from tests.testbed import netns
from tests.testbed.clients import KubeCLI
from tests.testbed.identities import (
    api_client_for_token,
    create_node,
    create_pod_on_node,
    kubeconfig_for_token,
    request_token,
)

SITE = "10.66.1.0/24"
"""B's site, behind B; an admin routes it to B."""
SITE_HOST = "10.66.1.1"
SERVICE_RANGE = "10.0.0.0/24"
"""The bed API server's --service-cluster-ip-range (its default ServiceCIDR)."""
PINGS = 60
POD_CIDR = "10.244.77.0/24"
"""A pod CIDR of a Node object the test creates."""


@pytest.fixture
def policies(
    helm: KubeCLI, ledger_namespace: str, network: str, tmp_path: Path, kube_api: ApiClient
) -> Iterator[Release]:
    """The chart's RBAC and admission policies, for the bed's own network, in the bed
    operator's namespace (where its ledger lives), as a release puts them."""
    release = Release(
        helm=helm,
        name=f"reef-{secrets.token_hex(3)}",
        namespace=ledger_namespace,
        network=network,
        workdir=tmp_path,
    )
    release.values = bed_values(network)
    release.values["network"]["create"] = False  # the bed makes the network
    release.install()
    try:
        wait_for_policy_in_force(kube_api, release)
        yield release
    finally:
        release.uninstall()


@pytest.fixture
def nodes(kube_api: ApiClient) -> Iterator[Callable[..., str]]:
    """``nodes(name, pod_cidrs=()) -> name``: Node objects, deleted afterwards."""
    core = kubernetes.client.CoreV1Api(kube_api)
    made: list[str] = []

    def make(name: str, pod_cidrs: tuple[str, ...] = ()) -> str:
        if pod_cidrs:
            spec = kubernetes.client.V1NodeSpec(pod_cidr=pod_cidrs[0], pod_cidrs=list(pod_cidrs))
            core.create_node(
                kubernetes.client.V1Node(
                    metadata=kubernetes.client.V1ObjectMeta(name=name), spec=spec
                )
            )
        else:
            create_node(kube_api, name)
        made.append(name)
        return name

    yield make
    for name in made:
        core.delete_node(name)


def network_publishes(
    mesh: MeshApi, network: str, prefixes: set[str], timeout: float = 30.0
) -> Body:
    """Wait until the operator lists ``prefixes`` in the network's status.clusterPrefixes."""

    def done(objects: dict[str, Body]) -> bool:
        published = ((objects.get(network) or {}).get("status") or {}).get("clusterPrefixes")
        return prefixes <= set(published or [])

    objects = wait_for(
        mesh,
        names.MESH_NETWORK_PLURAL,
        done,
        field_selector=f"metadata.name={network}",
        timeout=timeout,
    )
    return objects[network]


def routes(bed: AgentBed, name: str) -> set[str]:
    node = bed.node(name)
    out = node.run("ip", "-o", "route", "show", "dev", node.wg_ifname).stdout
    return {line.split()[0] for line in out.splitlines()}


def wg_allows(bed: AgentBed, on: str, peer: str) -> set[str]:
    return set(bed.wg_allowed_ips(on).get(bed.public_key(peer), []))


def serve_site(bed: AgentBed, name: str) -> None:
    """A host of the site behind node ``name``: an address on its loopback."""
    bed.node(name).run("ip", "addr", "add", f"{SITE_HOST}/32", "dev", "lo")


def configured_reason(objects: dict[str, Body], name: str, reason: str) -> bool:
    found = condition(objects.get(name) or {}, "Configured")
    return found is not None and found["reason"] == reason


def test_an_allowlisted_prefix_is_routed_everywhere_and_cluster_ranges_never(
    bed: Callable[..., AgentBed],
    mesh: MeshApi,
    network: str,
    policies: Release,
    nodes: Callable[..., str],
) -> None:
    nodes(f"{network}-pods", (POD_CIDR,))
    agents = bed(["a", "b", "c"], routablePrefixes=["10.0.0.0/8"])
    for name in ("a", "b", "c"):
        agents.start(name)
    b = agents.node_name("b")
    wait_for_agents(mesh, network, ready_with_peers(agents, ["a", "b", "c"], 2), timeout=90)
    network_publishes(mesh, network, {SERVICE_RANGE, POD_CIDR})
    routes_policy_sees(mesh, b, [SERVICE_RANGE], admitted=False)

    # Inside the allowlist: routed to b on every other node, and traffic gets there.
    mesh.patch_agent(b, {"spec": {"extraAllowedIPs": [SITE]}})
    serve_site(agents, "b")
    for name in ("a", "c"):
        wait_for_route(agents, name, SITE)
        assert SITE in wg_allows(agents, name, "b")
        agents.ping(name, SITE_HOST)

    # The cluster's own ranges and anything outside the allowlist: refused at admission.
    for prefix, said in [
        (SERVICE_RANGE, "overlap the pool or the cluster's own ranges"),
        (POD_CIDR, "overlap the pool or the cluster's own ranges"),
        ("10.0.0.0/8", "overlap the pool or the cluster's own ranges"),
        ("192.168.7.0/24", "outside spec.routablePrefixes"),
    ]:
        error = denied(partial(mesh.patch_agent, b, {"spec": {"extraAllowedIPs": [SITE, prefix]}}))
        assert said in message(error), message(error)

    # What admission cannot see — the allowlist narrowed after the fact — the agents
    # enforce: the prefix leaves every device and routing table, and b is told why.
    mesh.custom.patch_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.MESH_NETWORK_PLURAL,
        network,
        {"spec": {"routablePrefixes": ["10.55.0.0/16"]}},
    )
    objects = wait_for_agents(
        mesh, network, lambda objs: configured_reason(objs, b, "RoutesRefused"), timeout=60
    )
    configured = condition(objects[b], "Configured")
    assert configured is not None
    refusal = f"{SITE} is outside the MeshNetwork's routablePrefixes [10.55.0.0/16]"
    assert refusal in configured["message"]
    event = wait_for_event(mesh, b, "RouteRefused")
    assert "routablePrefixes" in (event.message or "")
    for name in ("a", "c"):
        wait_for_route(agents, name, SITE, present=False)
        assert SITE not in wg_allows(agents, name, "b")
        for reserved in (SERVICE_RANGE, POD_CIDR):
            assert reserved not in routes(agents, name)

    # Allowed again, then a new Node gets that range as its pod CIDR: the cluster's own
    # range wins, on every node, and b says which range it collides with.
    mesh.custom.patch_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.MESH_NETWORK_PLURAL,
        network,
        {"spec": {"routablePrefixes": ["10.0.0.0/8"]}},
    )
    for name in ("a", "c"):
        wait_for_route(agents, name, SITE)
    nodes(f"{network}-late", (SITE,))
    collision = f"{SITE} overlaps the cluster's own range {SITE}"
    wait_for_agents(
        mesh,
        network,
        lambda objs: (
            collision in (condition(objs.get(b) or {}, "Configured") or {}).get("message", "")
        ),
        timeout=60,
    )
    for name in ("a", "c"):
        wait_for_route(agents, name, SITE, present=False)
        assert SITE not in wg_allows(agents, name, "b")


def wait_for_route(
    bed: AgentBed, name: str, prefix: str, *, present: bool = True, timeout: float = 30.0
) -> None:
    """Until ``prefix`` is (or is no longer) routed via the node's interface, by rtnetlink
    events: subscribed first, then checked (with ``ip``, another socket, so the check
    cannot swallow an event), so a change between the two is seen by one or the other."""
    node = bed.node(name)
    wanted = str(ipaddress.ip_network(prefix))
    events = netns.route_watch(node.netns)
    with events:
        routed = {str(ipaddress.ip_network(r)) for r in routes(bed, name)}
        if (wanted in routed) == present:
            return
        index = bed.ifindex(name)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if not select.select([events], [], [], remaining)[0]:
                break
            for added, destination, oif in netns.route_changes(events.recv(65536)):
                if added == present and destination == wanted and oif == index:
                    return
    raise AssertionError(
        f"{prefix} {'not ' if present else 'still '}routed on {name} after {timeout}s"
        f" (routes: {sorted(routes(bed, name))})"
    )


def hostile_token(
    kube_api: ApiClient, release: Release, node: str, kubeconfig: Path, workdir: Path
) -> tuple[ApiClient, Path]:
    """Node ``node``'s real agent credentials: an API client and a kubeconfig."""
    pod = f"agent-{secrets.token_hex(3)}"
    uid = create_pod_on_node(
        kube_api, release.namespace, pod, node_name=node, service_account=release.agent_account
    )
    token = request_token(kube_api, release.namespace, release.agent_account, bound_pod=(pod, uid))
    path = kubeconfig_for_token(kubeconfig, token, workdir / f"{node}.kubeconfig", node)
    return api_client_for_token(kube_api, token), path


def attacks(a: Agent, b: str, b_address: str, release: Release, ledger: list[Any]) -> None:
    """Everything node A's token tries against B's traffic; each must be refused.
    ``ledger``: the network's ledger ConfigMaps, as the operator wrote them."""
    for spec, refusal in [
        ({"role": "Hub"}, "spec.role is admin-owned"),
        ({"extraAllowedIPs": [SITE]}, "spec.extraAllowedIPs is admin-owned"),
        ({"extraAllowedIPs": [f"{b_address}/32"]}, "spec.extraAllowedIPs is admin-owned"),
        ({"extraAllowedIPs": [SERVICE_RANGE]}, "spec.extraAllowedIPs is admin-owned"),
        ({"extraAllowedIPs": [POD_CIDR]}, "spec.extraAllowedIPs is admin-owned"),
        ({"extraAllowedIPs": ["0.0.0.0/0"]}, "spec.extraAllowedIPs is admin-owned"),
        ({"persistentKeepalive": 1}, "spec.persistentKeepalive is admin-owned"),
    ]:
        error = denied(partial(a.patch, a.node, {"spec": spec}))
        policy_denial(error, release, refusal)
    taken = denied(partial(a.patch, a.node, {"spec": {"requestedAddresses": [b_address]}}))
    assert "requestedAddresses is immutable" in message(taken), message(taken)
    assert "a cluster admin deletes the MeshAgent" in message(taken), message(taken)
    moved = denied(partial(a.patch, a.node, {"spec": {"nodeName": b}}))
    assert "nodeName cannot change once set" in message(moved), message(moved)
    second = a.body(name=f"{a.node}-twin")
    second["spec"].update(network=release.network, requestedAddresses=[b_address])
    policy_denial(denied(partial(a.create, second)), release, f"may only write MeshAgent {a.node}")
    hijack = {"spec": {"endpoint": "198.18.0.66:51820"}}
    policy_denial(denied(partial(a.patch, b, hijack)), release, f"not {b}")
    policy_denial(
        denied(partial(a.patch_status, b, {"addresses": ["100.64.0.250"]})), release, f"not {b}"
    )
    deletion = partial(
        a.custom.delete_cluster_custom_object,
        names.GROUP,
        names.VERSION,
        names.MESH_AGENT_PLURAL,
        b,
    )
    policy_denial(denied(deletion), release, f"not {b}; MeshAgent {b} is written by its own")
    core = kubernetes.client.CoreV1Api(a.api)
    forged = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name=f"reef-ipam-{release.network}-forged"),
        data={b_address: "{}"},
    )
    creation = partial(core.create_namespaced_config_map, release.namespace, forged)
    ledger_denial(denied(creation), release, "create")
    assert ledger, "the operator has written no ledger to attack"
    for shard in ledger:
        name = shard.metadata.name
        steal = {"data": {b_address: '{"owner": "' + a.node + '"}'}}
        edit = partial(core.patch_namespaced_config_map, name, release.namespace, steal)
        ledger_denial(denied(edit), release, "update")
        removal = partial(core.delete_namespaced_config_map, name, release.namespace)
        ledger_denial(denied(removal), release, "delete")
    # The same token still does its own job.
    a.apply_status(dataplane_status())


def test_a_hostile_node_cannot_touch_traffic_between_other_nodes(  # noqa: PLR0917
    bed: Callable[..., AgentBed],
    mesh: MeshApi,
    network: str,
    policies: Release,
    nodes: Callable[..., str],
    kube_api: ApiClient,
    kubeconfig: Path,
    tmp_path: Path,
) -> None:
    agents = bed(["a", "b", "c"], routablePrefixes=["10.66.0.0/16"])
    a_node = nodes(agents.node_name("a"))
    client, a_kubeconfig = hostile_token(kube_api, policies, a_node, kubeconfig, tmp_path)
    agents.start("a", REEF_KUBECONFIG=str(a_kubeconfig))
    agents.start("b")
    agents.start("c")
    b = agents.node_name("b")
    objects = wait_for_agents(
        mesh, network, ready_with_peers(agents, ["a", "b", "c"], 2), timeout=90
    )
    # A registered and reports with nothing but its node's token.
    assert condition(objects[a_node], "Ready") is not None
    mesh.patch_agent(b, {"spec": {"extraAllowedIPs": [SITE]}})
    serve_site(agents, "b")
    wait_for_route(agents, "c", SITE)
    b_address = mesh_address(objects[b])
    # 3 s of traffic each (60 pings, 50 ms apart) around the attacks, which take well
    # under a second; every ping must come back.
    ping = ("ping", "-n", "-c", str(PINGS), "-i", "0.05", "-W", "2")
    streams = [
        agents.stream("c", *ping, b_address),
        agents.stream("b", *ping, mesh_address(objects[agents.node_name("c")])),
        agents.stream("c", *ping, SITE_HOST),
    ]
    ledger = mesh.ledger(policies.namespace, network)
    try:
        attacks(Agent(a_node, client), b, b_address, policies, ledger)
    finally:
        client.close()
    for stream in streams:
        out, _ = stream.communicate(timeout=30)
        summary = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert summary is not None, out
        assert (int(summary[1]), int(summary[2])) == (PINGS, PINGS), out
    after = mesh.get_agent(b)
    assert after["spec"]["endpoint"] == objects[b]["spec"]["endpoint"]
    shards = {s.metadata.name: s.data for s in mesh.ledger(policies.namespace, network)}
    assert shards == {s.metadata.name: s.data for s in ledger}
    assert wg_allows(agents, "c", "b") == {f"{b_address}/32", SITE}
    mine = mesh.get_agent(a_node)["spec"]
    assert mine["role"] == "Agent"
    assert "extraAllowedIPs" not in mine
