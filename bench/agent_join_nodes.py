"""Benchmark: agent joins on real kubelet nodes — pod start → mesh address → pinged by all.

On the real-node bed (tests/testbed/kubelet_nodes.py), the image built from this tree's
Dockerfile, the unmodified chart with one addition: agent pods need the node not to be
labelled ``reef.bench/agent=off``. A join: label a node off (the DaemonSet controller
removes its agent pod), delete its MeshAgent and wait until every other agent has dropped
it as a peer, then remove the label, so the DaemonSet starts a fresh agent on a node
that has none, which registers from scratch (phases created → registered → address →
configured), as on a new node.

Start of a join: the kernel's start time of the agent container's first process
(10 ms ticks), not the pod's ``startedAt`` (whole seconds) nor the time the API shows
Running (the kubelet reports that up to its 1 s relist later). Then, on the same clock:
the agent's JSON log records (``interface`` — the early step put the address on — or
else ``configured`` = the mesh address is on the interface),
and from each other node ``ping -D`` of the new address every 50 ms until a reply.

Last, every agent pod is deleted at once; the time from then until every ordered pair
of nodes pings through the new agents' interfaces. Run::

    python -m bench.agent_join_nodes --joins 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import kubernetes.client
import kubernetes.config

from bench.agent_common import print_command, record_time
from bench.node_probes import (
    AgentLog,
    PingStream,
    StepTimeoutError,
    container_start,
    poll,
    real_nodes,
)
from tests.incluster.realcluster import NAMESPACE, RealCluster, healthy_mesh
from tests.support.mesh import MeshApi, addresses, wait_for_objects
from tests.testbed.kubelet_nodes import KubeletCluster

OFF_LABEL = "reef.bench/agent"
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": OFF_LABEL, "operator": "NotIn", "values": ["off"]}]}
            ]
        }
    }
}
PHASES = ("created", "registered", "address", "configured")
TIMEOUT = 120.0
AGENT_SELECTOR = "app.kubernetes.io/component=agent"


def phase_is(phase: str) -> Callable[[dict[str, object]], bool]:
    return lambda record: record.get("phase") == phase


@dataclass
class Agent:
    node: str
    pod: str
    start: float
    log: AgentLog


@dataclass
class Join:
    node: str
    phases: dict[str, float] = field(default_factory=dict)
    pinged_by: dict[str, float] = field(default_factory=dict)


def address_on(join: Join) -> float:
    """When the address was on the interface: the early step's record (phase
    ``interface``) when it did that, else the agent proper's ``configured``."""
    return min(join.phases.get("interface", join.phases["configured"]), join.phases["configured"])


class Bench:
    def __init__(self, bed: KubeletCluster, cluster: RealCluster) -> None:
        self.bed = bed
        self.cluster = cluster
        api = kubernetes.config.new_client_from_config(config_file=str(bed.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(api)
        self.mesh = MeshApi(api)
        self.nodes = cluster.node_names()

    def agent_pods(self) -> list[dict[str, Any]]:
        # the API client, not a kubectl process per poll: less CPU taken from the agents
        response: Any = self.core.list_namespaced_pod(  # raw: a urllib3 response
            NAMESPACE, label_selector=AGENT_SELECTOR, _preload_content=False
        )
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def running_agent(self, node: str, not_uids: set[str]) -> Agent | None:
        """The agent on ``node`` whose container runs, unless it is one of ``not_uids``."""
        for pod in self.agent_pods():
            meta = pod["metadata"]
            if pod["spec"].get("nodeName") != node or meta["uid"] in not_uids:
                continue
            for status in pod.get("status", {}).get("containerStatuses") or []:
                if "running" in status.get("state", {}) and status.get("containerID"):
                    cid = status["containerID"].split("://", 1)[1]
                    kubelet_node = self.bed[node]
                    log = AgentLog(kubelet_node, NAMESPACE, meta["name"], meta["uid"])
                    return Agent(node, meta["name"], container_start(kubelet_node, cid), log)
        return None

    def agent_uids(self, node: str | None = None) -> set[str]:
        return {
            p["metadata"]["uid"]
            for p in self.agent_pods()
            if node is None or p["spec"].get("nodeName") == node
        }

    def peers_logged(self, agent: Agent, count: int, after: float) -> float | None:
        """Time ``agent`` logged a peer set of ``count`` (or its first one) after ``after``."""
        record = agent.log.first(
            lambda r: (
                r.get("phase") in ("peers", "configured")
                and r.get("peers") == count
                and record_time(r) > after
            )
        )
        return None if record is None else record_time(record)

    def join(self, node: str) -> Join:
        others = [n for n in self.nodes if n != node]
        existing = [
            poll(lambda n=n: self.running_agent(n, set()), TIMEOUT, f"agent on {n}")  # type: ignore[misc]
            for n in others
        ]
        # 1. the node has no agent and no MeshAgent, and the others no peer for it
        dropped_after = time.time()
        self.cluster.kubectl("label", "node", node, f"{OFF_LABEL}=off", "--overwrite")
        poll(lambda: self.agent_uids(node) == set() or None, TIMEOUT, f"{node}'s agent pod gone")
        self.mesh.delete_agent(node)
        wait_for_objects(self.mesh, "meshagents", lambda o: node not in o, timeout=TIMEOUT)
        for agent in existing:
            poll(
                lambda a=agent: self.peers_logged(a, len(others) - 1, dropped_after),  # type: ignore[misc]
                TIMEOUT,
                f"{agent.node} dropping its peer {node}",
            )
        # 2. a fresh agent: its address, pinged from every other node as soon as known
        self.cluster.kubectl("label", "node", node, f"{OFF_LABEL}-")
        agents = wait_for_objects(
            self.mesh,
            "meshagents",
            lambda o: node in o and bool(addresses(o[node])),
            timeout=TIMEOUT,
        )
        address = addresses(agents[node])[0]
        pings = {n: PingStream(self.bed[n], address) for n in others}
        try:
            new = poll(lambda: self.running_agent(node, set()), TIMEOUT, f"{node}'s new agent")
            result = Join(node)
            for phase in PHASES:
                if phase == "created":
                    continue
                record = new.log.wait_for(phase_is(phase), TIMEOUT, f"{node} {phase}")
                result.phases[phase] = record_time(record) - new.start
            # Only when the early registration did it; looked for once "registered" (which
            # follows it) is in the log: read at once, the log may still have been empty.
            if (created := new.log.first(phase_is("created"))) is not None:
                result.phases["created"] = record_time(created) - new.start
            # The early step's interface record, when the address came in its wait (it
            # precedes "registered" too).
            if (interface := new.log.first(phase_is("interface"))) is not None:
                result.phases["interface"] = record_time(interface) - new.start
            for n, stream in pings.items():
                reply = poll(
                    lambda s=stream: s.first_reply_after(new.start),  # type: ignore[misc]
                    TIMEOUT,
                    f"{n} pinging {node} at {address}",
                )
                result.pinged_by[n] = reply - new.start
            for agent in existing:
                added = poll(
                    lambda a=agent: self.peers_logged(a, len(others), new.start),  # type: ignore[misc]
                    TIMEOUT,
                    f"{agent.node} adding its peer {node}",
                )
                result.phases[f"{agent.node} peers"] = added - new.start
            return result
        finally:
            for stream in pings.values():
                stream.stop()

    def recreate_all(self) -> tuple[float, float, dict[str, float]]:
        """(delete → all pairs ping, last container start → all pairs ping, per-node
        container start after delete)."""
        wait_for_objects(self.mesh, "meshagents", healthy_mesh(self.nodes), timeout=TIMEOUT)
        agents = wait_for_objects(self.mesh, "meshagents", lambda o: True, timeout=TIMEOUT)
        address = {n: addresses(agents[n])[0] for n in self.nodes}
        old = self.agent_uids()
        pings = {
            (s, d): PingStream(self.bed[s], address[d])
            for s, d in itertools.permutations(self.nodes, 2)
        }
        try:
            deleted = time.time()
            self.core.delete_collection_namespaced_pod(NAMESPACE, label_selector=AGENT_SELECTOR)
            new = {
                n: poll(lambda n=n: self.running_agent(n, old), TIMEOUT, f"new agent on {n}")  # type: ignore[misc]
                for n in self.nodes
            }
            # a reply after both ends' new interfaces are up went through them: the
            # old ones are gone by then (one interface name per node)
            up = {
                n: record_time(a.log.wait_for(phase_is("configured"), TIMEOUT, f"{n} up"))
                for n, a in new.items()
            }
            replies = [
                poll(
                    lambda p=pair: pings[p].first_reply_after(max(up[p[0]], up[p[1]])),  # type: ignore[misc]
                    TIMEOUT,
                    f"{pair[0]} pinging {pair[1]} after the re-creation",
                )
                for pair in pings
            ]
            last_start = max(a.start for a in new.values())
            return (
                max(replies) - deleted,
                max(replies) - last_start,
                {n: a.start - deleted for n, a in new.items()},
            )
        finally:
            for stream in pings.values():
                stream.stop()


def summary(name: str, values: Sequence[float]) -> str:
    return (
        f"{name}: median {statistics.median(values):.3f} s "
        f"(min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--joins", type=int, default=5)
    arguments = parser.parse_args()
    with real_nodes(arguments.nodes) as (bed, cluster):
        cluster.install("--set-json", f"agent.affinity={json.dumps(AFFINITY)}")
        bench = Bench(bed, cluster)
        try:
            joins = []
            for index in range(arguments.joins):
                wait_for_objects(
                    bench.mesh, "meshagents", healthy_mesh(bench.nodes), timeout=TIMEOUT
                )
                node = bench.nodes[index % len(bench.nodes)]
                joins.append(bench.join(node))
                done = joins[-1]
                print(
                    f"join {index + 1} ({node}): "
                    + ", ".join(f"{k} +{v:.3f}s" for k, v in done.phases.items())
                    + "; pinged by "
                    + ", ".join(f"{k} +{v:.3f}s" for k, v in done.pinged_by.items()),
                    flush=True,
                )
            from_delete, from_start, starts = bench.recreate_all()
        except (StepTimeoutError, AssertionError) as reason:  # AssertionError: a watch timed out
            raise SystemExit(f"a join never completed: {reason}") from reason
        finally:
            cluster.uninstall()
    print_command("bench.agent_join_nodes")
    print(f"nodes: {arguments.nodes}; a join's start: the agent container's process start")
    print(summary("pod start -> mesh address on its interface", [address_on(j) for j in joins]))
    early = [j.phases["interface"] for j in joins if "interface" in j.phases]
    print(f"  put on by the early step in {len(early)} of {len(joins)} joins")
    print(
        summary(
            "pod start -> every existing node pings it", [max(j.pinged_by.values()) for j in joins]
        )
    )
    for phase in (*PHASES, "interface"):
        values = [j.phases[phase] for j in joins if phase in j.phases]
        if values:
            print(summary(f"  pod start -> {phase}", values))
    print(
        "all agents re-created -> all pairs ping: "
        f"{from_delete:.3f} s from the delete, {from_start:.3f} s from the last container "
        "start (containers started "
        + ", ".join(f"{n} +{s:.3f}s" for n, s in starts.items())
        + " after the delete)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
