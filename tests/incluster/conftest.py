"""The real-node cluster for in-cluster tests: the kubelet bed, or the cluster you name.

Against your own cluster::

    python -m pytest tests/incluster --kubeconfig ~/.kube/config --kube-context kind-reef \\
        --reef-image reef:dev

(``kind load docker-image reef:dev --name reef`` first). The bed needs root, containerd,
runc, the CNI plugins, podman (for the image) and the built binaries; without them the
tests skip and say what is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator

import pytest

from tests.incluster.realcluster import NAMESPACE, RELEASE, RealCluster
from tests.testbed.binaries import BIN_DIR
from tests.testbed.clients import KubeCLI, KubeTarget
from tests.testbed.controlplane import CONTEXT_NAME
from tests.testbed.image import IMAGE, missing_programs
from tests.testbed.kubelet_nodes import KubeletCluster

BED_NODES = 3
BED_SPARES = 1

_BED_PROGRAMS = ("containerd", "ctr", "nsenter", "unshare", "iptables", "conntrack", "gcc")


def _bed_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "real nodes need root"
    missing = [p for p in _BED_PROGRAMS if shutil.which(p) is None] + missing_programs()
    if missing:
        return f"missing {', '.join(missing)} (bash scripts/setup.sh installs them)"
    for binary in ("kubelet", "kube-proxy", "kube-scheduler"):
        if not (BIN_DIR / binary).is_file():
            return f"{BIN_DIR / binary} missing (tests/testbed/build-binaries.sh)"
    return None


@pytest.fixture(scope="session")
def real_cluster(request: pytest.FixtureRequest) -> Iterator[RealCluster]:
    config = request.config
    if config.getoption("kubeconfig") is not None:
        image = config.getoption("reef_image")
        if not image or ":" not in image:
            pytest.skip("in-cluster tests on your cluster need --reef-image REPO:TAG")
        target: KubeTarget = request.getfixturevalue("kube_target")
        repository, tag = image.rsplit(":", 1)
        cluster = RealCluster(
            KubeCLI.kubectl(target),
            KubeCLI.helm(target),
            repository,
            tag,
            "IfNotPresent",
            node_shell_image=config.getoption("node_shell_image"),
        )
        if cluster.helm("status", RELEASE, "-n", NAMESPACE, check=False).returncode == 0:
            pytest.skip(
                f"release {RELEASE} already exists in {NAMESPACE}: the in-cluster tests install "
                "and uninstall their own, so they never run beside a real installation"
            )
        try:
            yield cluster
        finally:
            cluster.uninstall()
        return
    reason = _bed_unavailable()
    if reason is not None:
        pytest.skip(reason)
    bed = KubeletCluster(BED_NODES, spare=BED_SPARES)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        bed.start()
        target = KubeTarget(bed.kubeconfig, CONTEXT_NAME, bed.server, local_bed=True)
        repository, tag = IMAGE.rsplit(":", 1)
        yield RealCluster(
            KubeCLI.kubectl(target), KubeCLI.helm(target), repository, tag, "Never", bed=bed
        )
    finally:
        bed.stop()
        signal.signal(signal.SIGTERM, previous)
