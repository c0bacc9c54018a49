"""The quick demo: control plane, CRDs, the operator and three agents as plain processes.

    python -m tests.testbed.demo_processes          # builds it, pings across, prints, tears down
    python -m tests.testbed.demo_processes --keep   # ... and keeps it running until Ctrl-C

Needs root (network namespaces), wireguard-go and wireguard-tools; the control-plane
binaries are built into .cache/ on first use.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import subprocess
import sys

from bench.agent_common import bench_bed
from tests.support.mesh import MeshApi, addresses, condition, wait_for_agents
from tests.testbed.binaries import binary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep running until Ctrl-C")
    arguments = parser.parse_args()
    # SIGTERM tears down like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    nodes = ["a", "b", "c"]
    try:
        with bench_bed(nodes, network="demo") as bed:
            import kubernetes.config

            mesh = MeshApi(
                kubernetes.config.new_client_from_config(config_file=str(bed.kubeconfig))
            )
            print("control plane, CRDs, operator and MeshNetwork 'demo' are up; starting agents")
            for name in nodes:
                bed.start(name)
            for name in nodes:
                bed.agents[name].wait_for(lambda r: r.get("peers") == len(nodes) - 1, 120)
            address = {n: addresses(mesh.get_agent(bed.node_name(n)))[0] for n in nodes}
            for src, dst in itertools.permutations(nodes, 2):
                bed.ping(src, address[dst], wait=5)
                print(f"ping {src} ({address[src]}) -> {dst} ({address[dst]}): ok")
            wait_for_agents(  # the Ready reports land (by watch) before printing
                mesh,
                "demo",
                lambda objs: (
                    len(objs) == len(nodes)
                    and all(
                        (condition(b, "Ready") or {}).get("status") == "True" for b in objs.values()
                    )
                ),
                timeout=60,
            )
            kubectl = [str(binary("kubectl")), "--kubeconfig", str(bed.kubeconfig)]
            subprocess.run([*kubectl, "get", "mn,ma", "-o", "wide"], check=True)
            node = bed.node("a")
            print(node.run("wg", "show", node.wg_ifname).stdout)
            if arguments.keep:
                print(f"kept running; KUBECONFIG={bed.kubeconfig}; Ctrl-C tears it down")
                signal.pause()
    except KeyboardInterrupt:
        print("tearing down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
