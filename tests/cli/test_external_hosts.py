"""Hosts outside the cluster join the mesh: with wireguard-tools only, or running ``reef agent``.

The external host is a network namespace that is no cluster member: no reef code runs
in it and it has no way to the API server (no API relay). It only gets the wg-quick
config ``reef join`` wrote on the admin's machine (here: the test process), brought up
with ``wg-quick`` on wireguard-go. It joins without an endpoint, as a host behind NAT
does: the in-cluster members learn where it is from its own packets, and its keepalive
keeps that path open.
"""

from __future__ import annotations

import itertools
import json
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes.client
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from reef.api import names
from tests.agent.bed import AgentBed
from tests.cli.conftest import Run
from tests.install.helm_release import Release, bed_values
from tests.support.mesh import MeshApi, addresses, members_ready, wait_for_agents
from tests.support.operator_process import OperatorProcess
from tests.testbed.clients import KubeCLI
from tests.testbed.identities import api_client_for_token

FORBIDDEN = 403


def wg_quick_up(bed: AgentBed, host: str, config: Path) -> None:
    """``wg-quick up`` in ``host``, with wireguard-go as the interface (no kernel module)."""
    bed.node(host).run(
        "env", "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go", "wg-quick", "up", str(config)
    )


def test_a_host_with_only_wireguard_tools_joins_pings_everyone_keeps_its_address_and_leaves(
    *,
    bed: Callable[..., AgentBed],
    mesh: MeshApi,
    network: str,
    operator: OperatorProcess,
    cli: Run,
    tmp_path: Path,
) -> None:
    agents = bed(["a", "b", "ext"])
    inside = ["a", "b"]
    for name in inside:
        agents.start(name)
    wait_for_agents(mesh, network, members_ready({agents.node_name(n): 1 for n in inside}), 90)

    member = f"{network}-laptop"
    config = tmp_path / "conf" / f"{agents.node('ext').wg_ifname}.conf"
    key_dir = tmp_path / "keys"
    cli("join", member, "--network", network, "-o", str(config), "--key-dir", str(key_dir))
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE((key_dir / f"{member}.key").stat().st_mode) == 0o600
    body = mesh.get_agent(member)
    assert body["spec"].get("nodeName", "") == ""
    assert "endpoint" not in body["spec"]
    # only the public key went to the API, and the config holds the private one
    private = (key_dir / f"{member}.key").read_text().strip()
    assert private in config.read_text()
    assert private not in json.dumps(body)
    laptop = addresses(body)[0]

    wg_quick_up(agents, "ext", config)
    objects = wait_for_agents(
        mesh, network, members_ready({agents.node_name(n): 2 for n in inside}), 90
    )
    for name in inside:
        agents.ping("ext", addresses(objects[agents.node_name(name)])[0])
        agents.ping(name, laptop)

    # The operator restarts; the member keeps its address and its config stays valid.
    operator.stop()
    operator.start()
    shown = cli("showconf", member, "--key-dir", str(key_dir)).stdout
    assert shown == config.read_text()
    assert addresses(mesh.get_agent(member)) == [laptop]
    for name in inside:
        agents.ping(name, laptop)

    laptop_key = agents.public_key("ext")
    assert all(laptop_key in agents.wg_peers(n) for n in inside)
    cli("leave", member)
    wait_for_agents(mesh, network, members_ready({agents.node_name(n): 1 for n in inside}), 60)
    for name in inside:
        assert laptop_key not in agents.wg_peers(name)
    assert cli("showconf", member, check=False).returncode == 2


@pytest.fixture
def chart(
    helm: KubeCLI, namespace: str, reef_crds: None, network: str, tmp_path: Path
) -> Iterator[Release]:
    """The chart installed (its external-host role and admission policy), no network of its own."""
    release = Release(
        helm=helm,
        name=f"reef-{secrets.token_hex(3)}",
        namespace=namespace,
        network=network,
        workdir=tmp_path,
    )
    release.values = bed_values(network)
    release.values["network"]["create"] = False
    release.install()
    yield release
    release.uninstall()


def test_a_host_running_reef_agent_with_its_own_identity_joins_but_writes_only_itself(
    *,
    bed: Callable[..., AgentBed],
    mesh: MeshApi,
    network: str,
    chart: Release,
    cli: Run,
    kube_api: kubernetes.client.ApiClient,
    tmp_path: Path,
) -> None:
    agents = bed(["a", "ext"])
    agents.start("a")
    inside = agents.node_name("a")
    wait_for_agents(mesh, network, members_ready({inside: 0}), 90)

    host = agents.node_name("ext")
    host_kubeconfig = tmp_path / "host.kubeconfig"
    cli(
        "join",
        host,
        "--network",
        network,
        "-n",
        chart.namespace,
        "--host-role",
        f"{chart.fullname}-external-host",
        "--agent-kubeconfig",
        str(host_kubeconfig),
    )
    assert stat.S_IMODE(host_kubeconfig.stat().st_mode) == 0o600
    endpoint = f"{agents.node('ext').underlay.ip}:51820"
    agents.start(
        "ext",
        REEF_KUBECONFIG=str(host_kubeconfig),
        REEF_NODE_NAME=host,
        REEF_EXTERNAL_HOST="true",
        REEF_ENDPOINT=endpoint,
    )
    objects = wait_for_agents(mesh, network, members_ready({inside: 1, host: 1}), 90)
    assert objects[host]["spec"].get("nodeName", "") == ""
    assert objects[host]["spec"]["endpoint"] == endpoint
    for src, dst in itertools.permutations(["a", "ext"]):
        agents.ping(src, addresses(objects[agents.node_name(dst)])[0])

    token = yaml.safe_load(host_kubeconfig.read_text())["users"][0]["user"]["token"]
    client = api_client_for_token(kube_api, token)
    custom = kubernetes.client.CustomObjectsApi(client)
    # Both the external-host policy and the member policy (issue 14's, which covers
    # reef-host-* identities too) refuse these; the API server runs admission policies
    # in no fixed order and reports whichever refused first.
    policies = [
        f"ValidatingAdmissionPolicy '{chart.fullname}-external-host.mesh.reef.dev'",
        f"ValidatingAdmissionPolicy '{chart.fullname}-agent.mesh.reef.dev'",
    ]
    try:
        attempts = [
            lambda: custom.patch_cluster_custom_object(
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                inside,
                {"spec": {"endpoint": "198.18.9.9:51820"}},
            ),
            lambda: custom.patch_cluster_custom_object_status(
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                inside,
                {"status": {"dataplane": {"interface": "hijacked"}}},
            ),
            lambda: custom.create_cluster_custom_object(
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                mesh.agent_body(f"{host}-twin", network),
            ),
            lambda: custom.patch_cluster_custom_object(
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                host,
                {"spec": {"nodeName": inside}},
            ),
        ]
        for attempt in attempts:
            with pytest.raises(ApiException) as caught:
                attempt()
            said = json.loads(caught.value.body or "{}").get("message", "")
            assert caught.value.status == FORBIDDEN, said
            assert any(policy in said for policy in policies), said
        # RBAC gives it no delete at all
        with pytest.raises(ApiException) as caught:
            custom.delete_cluster_custom_object(
                names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, inside
            )
        assert caught.value.status == FORBIDDEN
    finally:
        client.close()
    assert mesh.get_agent(inside)["spec"]["endpoint"] != "198.18.9.9:51820"
