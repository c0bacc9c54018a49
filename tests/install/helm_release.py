"""The chart under test, rendering it, and Helm releases made for one test.

Releases get a random name (cluster-scoped objects — ClusterRoles, the admission
policy, the MeshNetwork — carry it, so tests never collide with each other or a
real installation) and a MeshNetwork of their own. The bed has no kubelet:
the operator Deployment never starts a Pod, and the agent DaemonSet is kept
off every node with a node selector no node matches.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.testbed.binaries import REPO_ROOT
from tests.testbed.clients import KubeCLI

CHART = REPO_ROOT / "charts" / "reef"

NO_NODE_SELECTOR = {"reef.test/no-node-has-this": "true"}
"""Keeps the DaemonSet's controller from making agent Pods on other tests' Nodes."""

Manifest = dict[str, Any]


def bed_values(network: str, **overrides: Any) -> dict[str, Any]:
    """Values for a release in the bed: its own small network, no agent Pods, nothing kept."""
    values: dict[str, Any] = {
        "network": {"name": network, "cidrs": ["100.64.0.0/20"], "keepOnUninstall": False},
        "agent": {"nodeSelector": NO_NODE_SELECTOR},
    }
    return _merge(values, overrides)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_values(directory: Path, values: dict[str, Any]) -> Path:
    path = directory / f"values-{secrets.token_hex(3)}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def documents(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def object_key(manifest: Manifest, default_namespace: str) -> tuple[str, str, str]:
    """(kind, namespace or "", name); namespaced kinds without one get `default_namespace`."""
    metadata = manifest["metadata"]
    namespace = metadata.get("namespace", "")
    if not namespace and manifest["kind"] in NAMESPACED_KINDS:
        namespace = default_namespace
    return manifest["kind"], namespace, metadata["name"]


NAMESPACED_KINDS = frozenset(
    {
        "Deployment",
        "DaemonSet",
        "ServiceAccount",
        "Service",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "Pod",
    }
)

CLUSTER_KINDS = (
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "validatingadmissionpolicies.admissionregistration.k8s.io",
    "validatingadmissionpolicybindings.admissionregistration.k8s.io",
    "meshnetworks.mesh.reef.dev",
)
NAMESPACED_RESOURCES = (
    "deployments.apps",
    "daemonsets.apps",
    "serviceaccounts",
    "services",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "poddisruptionbudgets.policy",
    "networkpolicies.networking.k8s.io",
)
"""Every kind the chart can create (ServiceMonitor aside: the bed has no such CRD)."""


def live_objects(kubectl: KubeCLI, release: str) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every object labelled with the release, in any namespace."""
    selector = f"app.kubernetes.io/instance={release}"
    found: set[tuple[str, str, str]] = set()
    for resources, scope in ((CLUSTER_KINDS, []), (NAMESPACED_RESOURCES, ["--all-namespaces"])):
        listed = json.loads(
            kubectl("get", ",".join(resources), *scope, "-l", selector, "-o", "json").stdout
        )
        for item in listed["items"]:
            metadata = item["metadata"]
            found.add((item["kind"], metadata.get("namespace", ""), metadata["name"]))
    return found


@dataclass
class Release:
    """One Helm release of the chart in its own namespace."""

    helm: KubeCLI
    name: str
    namespace: str
    network: str
    workdir: Path
    installed: bool = False
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def fullname(self) -> str:
        return self.name if "reef" in self.name else f"{self.name}-reef"

    @property
    def operator_account(self) -> str:
        return f"{self.fullname}-operator"

    @property
    def agent_account(self) -> str:
        return f"{self.fullname}-agent"

    def render(self, **overrides: Any) -> list[Manifest]:
        """``helm template`` with this release's values (plus overrides): the objects."""
        values = write_values(self.workdir, _merge(self.values, overrides))
        out = self.helm(
            "template", self.name, str(CHART), "--namespace", self.namespace, "-f", str(values)
        ).stdout
        return documents(out)

    def install(self, **overrides: Any) -> str:
        self.values = _merge(self.values, overrides)
        values = write_values(self.workdir, self.values)
        out = self.helm(
            "install",
            self.name,
            str(CHART),
            "--namespace",
            self.namespace,
            "-f",
            str(values),
            "--wait=false",
            timeout=180,
        ).stdout
        self.installed = True
        return out

    def upgrade(self, **overrides: Any) -> str:
        self.values = _merge(self.values, overrides)
        values = write_values(self.workdir, self.values)
        return self.helm(
            "upgrade",
            self.name,
            str(CHART),
            "--namespace",
            self.namespace,
            "-f",
            str(values),
            timeout=180,
        ).stdout

    def uninstall(self) -> None:
        if self.installed:
            self.helm("uninstall", self.name, "--namespace", self.namespace, timeout=180)
            self.installed = False

    def manifest_objects(self) -> set[tuple[str, str, str]]:
        """What Helm recorded for the release (hooks, such as `helm test` Pods, aside)."""
        text = self.helm("get", "manifest", self.name, "--namespace", self.namespace).stdout
        return {object_key(doc, self.namespace) for doc in documents(text)}
