"""The chart as files and as rendered objects: lint, schema, CRD copies, server-side dry-run.

Rendering is checked against the real API server (``kubectl apply --dry-run=server``),
so every object is one the cluster would accept — schema, admission and Pod Security
included — not merely valid YAML.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client import ApiClient

from tests.install.helm_release import CHART, Manifest, Release, documents, write_values
from tests.support.mesh import CRDS, MESH_AGENT_COLUMNS, MeshApi
from tests.testbed.clients import KubeCLI


def _one(objects: list[Manifest], kind: str, suffix: str = "") -> Manifest:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"expected one {kind} *{suffix}, got {[o['metadata'] for o in found]}"
    return found[0]


def test_helm_lint_reports_no_warnings_or_errors(helm: KubeCLI) -> None:
    result = helm("lint", str(CHART), "--strict")
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout
    assert "0 chart(s) failed" in result.stdout


def test_chart_crds_are_byte_identical_to_the_repository_crds() -> None:
    top = {path.name: path.read_bytes() for path in CRDS.glob("*.yaml")}
    chart = {path.name: path.read_bytes() for path in (CHART / "crds").glob("*.yaml")}
    assert top, "no CRDs in crds/"
    assert chart.keys() == top.keys(), "charts/reef/crds/ must hold exactly the files of crds/"
    for name, content in top.items():
        assert chart[name] == content, f"charts/reef/crds/{name} differs from crds/{name}"


def test_every_value_is_documented_with_a_comment() -> None:
    """Each key of values.yaml has a comment right above it, or sits inside a documented
    value (the keys of a default like ``resources`` belong to that value's comment)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    parents: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while parents and parents[-1][0] >= indent:
            parents.pop()
        commented = number > 0 and lines[number - 1].strip().startswith("#")
        documented = commented or (bool(parents) and parents[-1][1])
        is_section = line.rstrip().endswith(":") and not commented
        if not documented and not is_section:
            undocumented.append(match.group(2))
        parents.append((indent, documented))
    assert not undocumented, f"values without a comment: {undocumented}"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"operator": {"replicas": 2}}, "replicas"),
        ({"network": {"topology": "Ring"}}, "topology"),
        ({"agent": {"interface": "a-very-long-interface-name"}}, "interface"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ],
    ids=["unknown-key", "bad-enum", "interface-too-long", "pull-policy"],
)
def test_schema_refuses_wrong_values(
    helm: KubeCLI, tmp_path: Path, values: dict[str, Any], complaint: str
) -> None:
    result = helm(
        "template", "reef", str(CHART), "-f", str(write_values(tmp_path, values)), check=False
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_default_render_has_one_operator_and_agent_and_no_service_monitor(
    release: Release,
) -> None:
    objects = release.render()
    kinds = sorted(o["kind"] for o in objects)
    assert "ServiceMonitor" not in kinds
    assert "PodDisruptionBudget" not in kinds
    assert "NetworkPolicy" not in kinds
    deployment = _one(objects, "Deployment", "-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    _one(objects, "DaemonSet", "-agent")
    network = _one(objects, "MeshNetwork")
    assert network["metadata"]["name"] == release.network


def test_default_values_give_the_documented_default_network(helm: KubeCLI) -> None:
    objects = documents(helm("template", "reef", str(CHART)).stdout)
    network = _one(objects, "MeshNetwork")
    assert network["metadata"]["name"] == "default"
    assert network["spec"]["cidrs"] == ["100.64.0.0/10"]
    assert network["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_service_monitor_is_rendered_only_when_enabled(release: Release) -> None:
    objects = release.render(metrics={"serviceMonitor": {"enabled": True, "labels": {"p": "x"}}})
    monitor = _one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["p"] == "x"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def test_rbac_uses_no_wildcards(release: Release) -> None:
    objects = release.render()
    rules = [rule for o in objects if o["kind"] in {"ClusterRole", "Role"} for rule in o["rules"]]
    assert rules
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), f"wildcard in {rule}"


def test_rendered_chart_passes_a_server_side_dry_run(release: Release, kubectl: KubeCLI) -> None:
    """Every object, with every optional part but the ServiceMonitor switched on."""
    objects = release.render(
        operator={"podDisruptionBudget": {"enabled": True}, "priorityClassName": ""},
        networkPolicy={"enabled": True, "metricsFrom": [{"namespaceSelector": {}}]},
        network={"mtu": 1420},
    )
    _create_service_accounts(objects, kubectl)
    text = yaml.safe_dump_all(objects)
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=text)
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objects), result.stdout


def _create_service_accounts(objects: list[Manifest], kubectl: KubeCLI) -> None:
    """Pods (the `helm test` hook, Pods of the workloads) are admitted only when their
    ServiceAccount exists, which a dry-run of the same batch cannot provide."""
    accounts = [o for o in objects if o["kind"] == "ServiceAccount"]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(accounts))


def _pod_from_template(workload: Manifest, name: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": workload["metadata"]["namespace"],
            "labels": workload["spec"]["template"]["metadata"]["labels"],
        },
        "spec": workload["spec"]["template"]["spec"],
    }


def test_operator_pod_is_admitted_under_restricted_pod_security(
    release: Release, kube_api: ApiClient, kubectl: KubeCLI
) -> None:
    """Pod Security admission enforces on Pods: dry-run the operator's Pod in a restricted
    namespace. The agent's Pod (host network, NET_ADMIN) is refused there, as it should be."""
    core = kubernetes.client.CoreV1Api(kube_api)
    core.patch_namespace(
        release.namespace,
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    objects = release.render()
    _create_service_accounts(objects, kubectl)
    operator_pod = _pod_from_template(_one(objects, "Deployment", "-operator"), "operator")
    test_pod = _one(objects, "Pod", "-test-network-ready")
    for pod in (operator_pod, test_pod):
        kubectl(
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            input=yaml.safe_dump(pod),
        )
    agent_pod = _pod_from_template(_one(objects, "DaemonSet", "-agent"), "agent")
    refused = kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=yaml.safe_dump(agent_pod),
        check=False,
    )
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr
    assert "hostNetwork" in refused.stderr


def test_crds_alone_install_the_api_and_get_ma_prints_the_documented_columns(
    reef_crds: None, kube_api: ApiClient, kubectl: KubeCLI, unique_name: Any
) -> None:
    mesh = MeshApi(kube_api)
    name = unique_name("ma")
    mesh.create_agent(name, "default", nodeName=name, endpoint="198.18.0.7:51820")
    try:
        lines = kubectl("get", "ma", name).stdout.splitlines()
        assert lines[0].split() == MESH_AGENT_COLUMNS
        row = lines[1].split()
        assert row[:3] == [name, "default", name]
        assert "198.18.0.7:51820" in row  # ADDRESS is still empty: no operator runs here
        # The category: `kubectl get reef` lists reef's kinds (this MeshAgent among them).
        in_category = kubectl("get", "reef", "-o", "name").stdout.split()
        assert f"meshagent.mesh.reef.dev/{name}" in in_category
    finally:
        mesh.custom.patch_cluster_custom_object(
            "mesh.reef.dev", "v1alpha1", "meshagents", name, {"metadata": {"finalizers": None}}
        )
        mesh.delete_agent(name)
