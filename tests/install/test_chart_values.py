"""The chart as a subchart of an umbrella (GitOps), and the values added for real fleets:
pod labels, securityContext overrides, update strategy, topology spread, extra objects and
Helm-managed CRDs. Rendered by Helm, then checked by the real API server (dry-run)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import yaml

from tests.install.helm_release import (
    CHART,
    NO_NODE_SELECTOR,
    Manifest,
    Release,
    documents,
    live_objects,
)
from tests.support.mesh import CRDS
from tests.testbed.clients import KubeCLI

LINUX = {"kubernetes.io/os": "linux"}


def _one(objects: list[Manifest], kind: str, suffix: str = "") -> Manifest:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"expected one {kind} *{suffix}, got {[o['metadata'] for o in found]}"
    return found[0]


def _umbrella(directory: Path, helm: KubeCLI) -> Path:
    """A parent chart that pulls reef in as a dependency with a condition (Argo CD/Flux style)."""
    umbrella = directory / "platform"
    (umbrella / "templates").mkdir(parents=True)
    (umbrella / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "platform",
                "version": "1.0.0",
                "dependencies": [
                    {
                        "name": "reef",
                        "version": "0.1.0",
                        "repository": f"file://{CHART}",
                        "condition": "reef.enabled",
                    }
                ],
            }
        )
    )
    (umbrella / "values.yaml").write_text(yaml.safe_dump({"reef": {"enabled": True}}))
    helm("dependency", "build", str(umbrella))
    return umbrella


def test_chart_installs_as_a_subchart_with_global_values_and_an_enabled_condition(
    helm: KubeCLI, kubectl: KubeCLI, namespace: str, reef_crds: None, tmp_path: Path
) -> None:
    umbrella = _umbrella(tmp_path, helm)
    token = secrets.token_hex(3)
    name, network = f"platform-{token}", f"net-{token}"
    values = tmp_path / "umbrella-values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "global": {"imageRegistry": "registry.example.org", "clusterName": "edge"},
                "reef": {
                    "enabled": True,
                    "network": {"name": network, "cidrs": ["100.65.0.0/24"]},
                    "agent": {"nodeSelector": NO_NODE_SELECTOR},
                },
            }
        )
    )
    # The parent's global values reach the subchart; its schema must accept them.
    assert "0 chart(s) failed" in helm("lint", "--strict", str(umbrella), "-f", str(values)).stdout

    off = helm("template", name, str(umbrella), "-f", str(values), "--set", "reef.enabled=false")
    assert not documents(off.stdout), "reef.enabled=false must leave reef out of the umbrella"

    helm("install", name, str(umbrella), "-n", namespace, "-f", str(values), "--wait=false")
    try:
        kinds = {kind for kind, _, _ in live_objects(kubectl, name)}
        assert {"Deployment", "DaemonSet", "MeshNetwork", "ValidatingAdmissionPolicy"} <= kinds
        body = json.loads(kubectl("get", "mn", network, "-o", "json").stdout)
        assert body["spec"]["cidrs"] == ["100.65.0.0/24"]
    finally:
        helm("uninstall", name, "-n", namespace, timeout=180)
        kubectl("delete", "mn", network, "--ignore-not-found", "--wait=false")


def test_both_workloads_run_on_linux_nodes_by_default(helm: KubeCLI) -> None:
    objects = documents(helm("template", "reef", str(CHART), "-n", "reef-system").stdout)
    for workload in (_one(objects, "Deployment", "-operator"), _one(objects, "DaemonSet")):
        assert workload["spec"]["template"]["spec"]["nodeSelector"] == LINUX


def test_fleet_values_render_as_asked_and_pass_a_server_side_dry_run(
    release: Release, kubectl: KubeCLI
) -> None:
    spread = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
    }
    objects = release.render(
        operator={"podLabels": {"team": "network"}, "topologySpreadConstraints": [spread]},
        agent={
            "podLabels": {"team": "network"},
            "updateStrategy": "OnDelete",
            # SELinux hosts that refuse /dev/net/tun to an unprivileged container
            "securityContext": {"privileged": True, "allowPrivilegeEscalation": True},
        },
        extraObjects=[
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "{{ .Release.Name }}-extra"},
                "data": {"namespace": "{{ .Release.Namespace }}"},
            },
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-text\n",
        ],
        crds={"enabled": True},
    )

    operator = _one(objects, "Deployment", "-operator")["spec"]["template"]
    assert operator["metadata"]["labels"]["team"] == "network"
    (constraint,) = operator["spec"]["topologySpreadConstraints"]
    assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    assert operator["spec"]["securityContext"]["runAsNonRoot"] is True

    agent = _one(objects, "DaemonSet")
    assert agent["spec"]["updateStrategy"] == {"type": "OnDelete"}
    pod = agent["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "network"
    assert pod["spec"]["nodeSelector"] == {**LINUX, **NO_NODE_SELECTOR}
    context = pod["spec"]["containers"][0]["securityContext"]
    assert context["privileged"] is True
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}  # merged, kept

    extra = _one(objects, "ConfigMap", "-extra")
    assert extra["metadata"]["name"] == f"{release.name}-extra"
    assert extra["data"] == {"namespace": release.namespace}
    _one(objects, "ConfigMap", "-text")

    service_accounts = [o for o in objects if o["kind"] == "ServiceAccount"]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(service_accounts))
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(objects))
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objects), result.stdout


def test_helm_managed_crds_are_the_crds_directory_and_kept_on_uninstall(
    release: Release,
) -> None:
    assert not [o for o in release.render() if o["kind"] == "CustomResourceDefinition"]

    rendered = {
        o["metadata"]["name"]: o
        for o in release.render(crds={"enabled": True})
        if o["kind"] == "CustomResourceDefinition"
    }
    files = {
        (doc := yaml.safe_load(path.read_text()))["metadata"]["name"]: doc
        for path in (CHART / "crds").glob("*.yaml")
    }
    assert rendered.keys() == files.keys()
    for name, crd in rendered.items():
        assert crd["spec"] == files[name]["spec"], f"{name}: rendered spec differs from crds/"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert {p.name for p in CRDS.glob("*.yaml")} == {p.name for p in (CHART / "crds").glob("*")}

    unkept = release.render(crds={"enabled": True, "keep": False})
    for crd in (o for o in unkept if o["kind"] == "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def test_chart_metadata_and_artifact_hub_annotations_are_well_formed() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.32.0-0"
    assert chart["home"].startswith("https://")
    assert chart["sources"]
    assert all({"name", "email"} <= set(m) for m in chart["maintainers"])
    annotations = chart["annotations"]
    assert annotations["artifacthub.io/license"] == "Apache-2.0"
    crds = yaml.safe_load(annotations["artifacthub.io/crds"])
    files = [yaml.safe_load(path.read_text()) for path in sorted(CRDS.glob("*.yaml"))]
    assert {(c["kind"], c["version"], c["name"]) for c in crds} == {
        (doc["spec"]["names"]["kind"], version["name"], doc["metadata"]["name"])
        for doc in files
        for version in doc["spec"]["versions"]
    }
    assert all(c["displayName"] and c["description"] for c in crds)
    for link in yaml.safe_load(annotations["artifacthub.io/links"]):
        assert link["url"].startswith("https://"), link
    assert (CHART.parents[1] / "LICENSE").read_text().split()[:3] == [
        "Apache",
        "License",
        "Version",
    ]
