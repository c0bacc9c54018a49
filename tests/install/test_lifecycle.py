"""helm install, upgrade and uninstall against the real API server."""

from __future__ import annotations

import json

from tests.install.helm_release import Release, live_objects
from tests.testbed.clients import KubeCLI


def _env(kubectl: KubeCLI, release: Release, workload: str) -> dict[str, str]:
    body = json.loads(kubectl("get", workload, "-n", release.namespace, "-o", "json").stdout)
    container = body["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "<from>") for e in container["env"]}


def test_install_creates_every_object_of_the_chart(release: Release, kubectl: KubeCLI) -> None:
    notes = release.install()

    recorded = release.manifest_objects()
    assert live_objects(kubectl, release.name) == recorded
    kinds = {kind for kind, _, _ in recorded}
    assert kinds >= {
        "Deployment",
        "DaemonSet",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MeshNetwork",
    }
    assert f"kubectl wait --for=condition=Ready mn/{release.network}" in notes
    network = json.loads(kubectl("get", "mn", release.network, "-o", "json").stdout)
    assert network["spec"]["cidrs"] == ["100.64.0.0/20"]
    operator_env = _env(kubectl, release, f"deploy/{release.fullname}-operator")
    assert operator_env["REEF_LOG_FORMAT"] == "json"
    agent_env = _env(kubectl, release, f"ds/{release.fullname}-agent")
    assert agent_env["REEF_NETWORK"] == release.network


def test_upgrade_with_changed_values_adds_changes_and_removes_objects(
    release: Release, kubectl: KubeCLI
) -> None:
    release.install()
    before = release.manifest_objects()

    release.upgrade(
        operator={"logLevel": "DEBUG", "podDisruptionBudget": {"enabled": True}},
        agent={"interface": "mesh0"},
        metrics={"service": {"enabled": False}},
    )

    after = release.manifest_objects()
    assert live_objects(kubectl, release.name) == after
    added = after - before
    removed = before - after
    assert {kind for kind, _, _ in added} == {"PodDisruptionBudget"}
    assert {kind for kind, _, _ in removed} == {"Service"}
    assert (
        _env(kubectl, release, f"deploy/{release.fullname}-operator")["REEF_LOG_LEVEL"] == "DEBUG"
    )
    assert _env(kubectl, release, f"ds/{release.fullname}-agent")["REEF_INTERFACE"] == "mesh0"
    history = release.helm("history", release.name, "-n", release.namespace).stdout
    assert "deployed" in history.splitlines()[-1]


def test_uninstall_leaves_nothing_but_the_crds(release: Release, kubectl: KubeCLI) -> None:
    release.install()
    assert live_objects(kubectl, release.name)

    release.uninstall()

    assert live_objects(kubectl, release.name) == set()
    crds = kubectl("get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/meshagents.mesh.reef.dev" in crds
    assert "customresourcedefinition.apiextensions.k8s.io/meshnetworks.mesh.reef.dev" in crds


def test_uninstall_keeps_the_address_pool_by_default(release: Release, kubectl: KubeCLI) -> None:
    # The fixture's values say keepOnUninstall: false (to clean up); take it out so the
    # chart's own default decides.
    release.values["network"].pop("keepOnUninstall")
    release.install()
    release.uninstall()
    try:
        kept = live_objects(kubectl, release.name)
        assert {kind for kind, _, _ in kept} == {"MeshNetwork"}
    finally:
        kubectl("delete", "mn", release.network, "--ignore-not-found")
