"""A cluster with real nodes, for tests that install the chart and watch its pods run.

Two sources, one interface:

- **the real-node bed** (tests/testbed/kubelet_nodes.py): a control plane and kubelet
  nodes made for this session, the reef image built from the Dockerfile and imported
  into every node's containerd;
- **your cluster** (``--kubeconfig … --kube-context … --reef-image REPO:TAG``), e.g. kind
  after ``kind load docker-image REPO:TAG``. Commands "on a node" then run in a
  ``kubectl debug node/…`` pod, which shares the node's network namespace as the
  hostNetwork agent does; ``--node-shell-image`` names an image with ``ping``.

Releases are installed the way docs/install.md tells a user to: namespace with the
privileged Pod Security label first, then ``helm install`` of the unmodified chart with
only the image settings.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.mesh import Body, addresses, condition
from tests.testbed.clients import KubeCLI
from tests.testbed.kubelet_nodes import KubeletCluster

RELEASE = "reef"
NAMESPACE = "reef-system"


def healthy_mesh(nodes: list[str]) -> Callable[[dict[str, Body]], bool]:
    """Every node's MeshAgent Allocated and Ready, with n-1 of n-1 peers healthy."""
    wanted = len(nodes) - 1

    def done(objects: dict[str, Body]) -> bool:
        for name in nodes:
            body = objects.get(name)
            if body is None or not addresses(body):
                return False
            for kind in ("Allocated", "Ready"):
                found = condition(body, kind)
                if found is None or found["status"] != "True":
                    return False
            peers = ((body.get("status") or {}).get("dataplane") or {}).get("peers") or {}
            if peers.get("total") != wanted or peers.get("healthy") != wanted:
                return False
        return True

    return done


@dataclass
class RealCluster:
    kubectl: KubeCLI
    helm: KubeCLI
    image_repository: str
    image_tag: str
    pull_policy: str
    bed: KubeletCluster | None = None
    node_shell_image: str = "busybox:1.36"
    installed: bool = field(default=False, init=False)

    # -- nodes ---------------------------------------------------------------------------

    def node_names(self) -> list[str]:
        listed = json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)
        return sorted(item["metadata"]["name"] for item in listed["items"])

    @property
    def can_add_nodes(self) -> bool:
        return self.bed is not None and bool(self.bed.spares)

    def add_node(self) -> str:
        """A new node joins the cluster (the bed only); its name once it is Ready."""
        assert self.bed is not None, "only the bed can add nodes"
        return self.bed.join().name

    def on_node(
        self, node: str, *cmd: str, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in ``node``'s host network namespace; the caller checks the result."""
        if self.bed is not None:
            return self.bed[node].netns_node.run(*cmd, check=False, timeout=timeout)
        return self.kubectl(
            "debug",
            f"node/{node}",
            "-q",
            "--attach",
            "--profile=netadmin",
            f"--image={self.node_shell_image}",
            "--",
            *cmd,
            check=False,
            timeout=timeout,
        )

    def pings(self, node: str, address: str) -> bool:
        return self.on_node(node, "ping", "-c", "1", "-W", "2", address).returncode == 0

    def dataplane_dump(self, node: str) -> str:
        """What a failed ping needs explained: the node's addresses, routes and peers."""
        parts = []
        for cmd in (("ip", "-4", "addr"), ("ip", "-4", "route"), ("wg", "show", "all", "dump")):
            done = self.on_node(node, *cmd)
            parts.append(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}")
        return f"--- {node}\n" + "\n".join(parts)

    # -- the release ---------------------------------------------------------------------

    def image_values(self) -> list[str]:
        return [
            "--set",
            f"image.repository={self.image_repository}",
            "--set",
            f"image.tag={self.image_tag}",
            "--set",
            f"image.pullPolicy={self.pull_policy}",
        ]

    def install(self, *values: str, timeout: str = "180s") -> subprocess.CompletedProcess[str]:
        from tests.install.helm_release import CHART

        self.kubectl("create", "namespace", NAMESPACE, check=False)
        self.kubectl(
            "label",
            "namespace",
            NAMESPACE,
            "--overwrite",
            "pod-security.kubernetes.io/enforce=privileged",
        )
        result = self.helm(
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            *self.image_values(),
            *values,
            "--wait",
            f"--timeout={timeout}",
            timeout=300,
        )
        self.installed = True
        return result

    def upgrade(self, *values: str, timeout: str = "240s") -> subprocess.CompletedProcess[str]:
        from tests.install.helm_release import CHART

        return self.helm(
            "upgrade",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--reuse-values",
            *values,
            "--wait",
            f"--timeout={timeout}",
            timeout=360,
        )

    def uninstall(self) -> None:
        if self.installed:
            self.helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
            self.installed = False

    def pods(self, component: str) -> list[dict[str, Any]]:
        listed = json.loads(
            self.kubectl(
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                f"app.kubernetes.io/component={component}",
                "-o",
                "json",
            ).stdout
        )
        items: list[dict[str, Any]] = listed["items"]
        return items

    def exec_in(
        self, pod: str, *cmd: str, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl("exec", "-n", NAMESPACE, pod, "--", *cmd, check=False, timeout=timeout)
