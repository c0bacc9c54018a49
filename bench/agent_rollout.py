"""Benchmark: traffic lost per node while a ``helm upgrade`` rolls the agent DaemonSet.

On the real-node bed (tests/testbed/kubelet_nodes.py): the unmodified chart is installed,
every node pings every other node's mesh address 10 times a second (``ping -O -D``),
then an upgrade that changes only a pod annotation replaces every agent pod, one node
at a time (``maxUnavailable: 1``). With the userspace backend wireguard-go lives in the
agent's container, so a node's interface goes with its old pod and comes back with the
new one: the gap is the time between the two.

Per node: the longest run of unanswered pings *to* it, from any other node, in seconds
(lost packets x interval), and the same for pings *from* it. Run::

    python -m bench.agent_rollout --nodes 3
"""

from __future__ import annotations

import argparse
import itertools
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass

import kubernetes.config

from bench.agent_common import print_command
from bench.node_probes import real_nodes
from tests.incluster.realcluster import NAMESPACE, RELEASE, healthy_mesh
from tests.support.mesh import MeshApi, addresses, wait_for_objects

INTERVAL = 0.1


@dataclass
class Stream:
    source: str
    target: str
    process: subprocess.Popen[str]


def _longest_gap(output: str) -> tuple[float, int, int]:
    """(longest run of lost replies in seconds, replies, sent) from ``ping -O`` output."""
    answered = {int(m) for m in re.findall(r"icmp_seq=(\d+) ttl=", output)}
    sent = max([int(m) for m in re.findall(r"icmp_seq=(\d+)", output)] or [0])
    longest = run = 0
    for seq in range(1, sent + 1):
        run = 0 if seq in answered else run + 1
        longest = max(longest, run)
    return longest * INTERVAL, len(answered), sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    arguments = parser.parse_args()
    with real_nodes(arguments.nodes) as (bed, cluster):
        cluster.install()
        nodes = cluster.node_names()
        mesh = MeshApi(kubernetes.config.new_client_from_config(config_file=str(bed.kubeconfig)))

        healthy = healthy_mesh(nodes)
        agents = wait_for_objects(mesh, "meshagents", healthy, timeout=180)
        for node in nodes:
            print(f"{node}: {bed[node].memory_mib():.0f} MiB resident (daemons, shims, pods)")
        streams = [
            Stream(
                source,
                dest,
                subprocess.Popen(
                    bed[source].netns_node.argv(
                        "ping",
                        "-n",
                        "-O",
                        "-D",
                        "-i",
                        str(INTERVAL),
                        "-W",
                        "1",
                        addresses(agents[dest])[0],
                    ),
                    stdout=subprocess.PIPE,
                    text=True,
                ),
            )
            for source, dest in itertools.permutations(nodes, 2)
        ]
        started = time.monotonic()
        cluster.upgrade(
            "--set", f"agent.podAnnotations.reef\\.bench/rollout={secrets.token_hex(4)}"
        )
        cluster.kubectl(
            "rollout", "status", "-n", NAMESPACE, f"daemonset/{RELEASE}-agent", "--timeout=300s"
        )
        wait_for_objects(mesh, "meshagents", healthy, timeout=180)
        rollout = time.monotonic() - started
        outputs: dict[tuple[str, str], str] = {}
        for stream in streams:
            stream.process.send_signal(signal.SIGINT)
            out, _ = stream.process.communicate(timeout=30)
            outputs[(stream.source, stream.target)] = out
        print(f"rollout of {len(nodes)} agent pods, upgrade -> all healthy again: {rollout:.1f}s")
        print("| node | longest gap to it | longest gap from it | replies/sent (to it) |")
        print("|---|---|---|---|")
        for node in nodes:
            to_it = [_longest_gap(o) for (s, d), o in outputs.items() if d == node]
            from_it = [_longest_gap(o) for (s, d), o in outputs.items() if s == node]
            replies = sum(r for _, r, _ in to_it)
            sent = sum(n for _, _, n in to_it)
            print(
                f"| {node} | {max(g for g, _, _ in to_it):.1f} s "
                f"| {max(g for g, _, _ in from_it):.1f} s | {replies}/{sent} |"
            )
        cluster.uninstall()
    print_command("bench.agent_rollout")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
