"""The demo a newcomer runs: reef installed with ``helm install`` onto three real nodes.

    python -m tests.testbed.demo          # builds it, pings across, prints, tears down
    python -m tests.testbed.demo --keep   # ... and keeps it running until Ctrl-C

A control plane and three kubelet nodes (tests/testbed/kubelet_nodes.py), the reef image
built from the Dockerfile and loaded into every node, then the unmodified chart — what a
user does on a real cluster. Shows the pods, ``kubectl get mn,ma`` and a ping between
every pair of nodes over their mesh addresses. Needs root; ``make setup`` installs the
rest. (``make demo-processes`` is the quicker demo without kubelets.)
"""

from __future__ import annotations

import argparse
import itertools
import signal
import sys

import kubernetes.config

from tests.incluster.realcluster import RealCluster, healthy_mesh
from tests.support.mesh import MeshApi, addresses, wait_for_objects
from tests.testbed.clients import KubeCLI, KubeTarget
from tests.testbed.controlplane import CONTEXT_NAME
from tests.testbed.image import IMAGE
from tests.testbed.kubelet_nodes import KubeletCluster


def _show(cluster: RealCluster, *args: str) -> None:
    print(f"$ kubectl {' '.join(args)}")
    print(cluster.kubectl(*args).stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep running until Ctrl-C")
    parser.add_argument("--nodes", type=int, default=3)
    arguments = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        print(f"building the image and starting a control plane with {arguments.nodes} nodes")
        with KubeletCluster(arguments.nodes) as bed:
            print(f"nodes Ready; phases (s): {bed.timings}")
            target = KubeTarget(bed.kubeconfig, CONTEXT_NAME, bed.server, local_bed=True)
            repository, tag = IMAGE.rsplit(":", 1)
            cluster = RealCluster(
                KubeCLI.kubectl(target), KubeCLI.helm(target), repository, tag, "Never", bed=bed
            )
            print(
                f"$ helm install reef charts/reef -n reef-system --set image.repository="
                f"{repository} --set image.tag={tag} --set image.pullPolicy=Never --wait"
            )
            cluster.install()
            nodes = cluster.node_names()
            mesh = MeshApi(
                kubernetes.config.new_client_from_config(config_file=str(bed.kubeconfig))
            )
            agents = wait_for_objects(mesh, "meshagents", healthy_mesh(nodes), timeout=180)
            _show(cluster, "get", "pods", "-n", "reef-system", "-o", "wide")
            _show(cluster, "get", "mn,ma")
            for source, dest in itertools.permutations(nodes, 2):
                address = addresses(agents[dest])[0]
                verdict = "ok" if cluster.pings(source, address) else "NO REPLY"
                print(f"ping {source} -> {dest} ({address}): {verdict}")
            if arguments.keep:
                print(f"kept running; KUBECONFIG={bed.kubeconfig}; Ctrl-C tears it down")
                signal.pause()
    except KeyboardInterrupt:
        print("tearing down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
