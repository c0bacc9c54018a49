"""Benchmark: agent start -> registered -> permanent address -> interface up -> first ping.

A peer node runs first; then, one run at a time, a fresh node's agent is started and
each step is timed from its JSON log (wall clock) and from ``ping -D`` in the node,
which pings the peer's mesh address the moment the interface is up — every 50 ms until
the first reply (at most 5 s), so a lost first packet shows as the time it really cost,
not as a 5 s ping timeout; the requests lost before it are counted. The agents run with
the chart's timers (``--test-timers``: the test bed's, which report status every second
and so make every join cost every agent more work than in a cluster). Run::

    python -m bench.agent_startup --runs 5
"""

from __future__ import annotations

import argparse
import os
import re
import statistics

from bench.agent_common import (
    bench_bed,
    chart_timers,
    children,
    percentile,
    print_command,
    record_time,
)
from tests.support.mesh import MeshApi, addresses

STEPS = ("registered", "address", "configured", "first ping")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--test-timers",
        action="store_true",
        help="the test bed's 1 s health checks and status interval instead of the chart's",
    )
    parser.add_argument(
        "--shared-cpu",
        action="store_true",
        help="let the joining node share the CPUs with all other nodes and the control plane",
    )
    arguments = parser.parse_args()
    timers = {} if arguments.test_timers else chart_timers()
    # In a cluster the joining node has CPUs of its own; here every node is a process on
    # one machine, and the existing nodes' reaction to the join (N agents, their
    # wireguard-go, the API server) would compete with the joiner for the same cores. So
    # the bed runs on CPU 0 and each joiner, while it joins, alone on CPU 1.
    cpus = sorted(os.sched_getaffinity(0))
    own_cpu = not arguments.shared_cpu and len(cpus) >= 2
    if own_cpu:
        os.sched_setaffinity(0, {cpus[0]})
    names = ["peer", *(f"n{i}" for i in range(arguments.runs))]
    samples: dict[str, list[float]] = {step: [] for step in (*STEPS, "address->ping")}
    lost: list[int] = []
    with bench_bed(names) as bed:
        import kubernetes.config

        mesh = MeshApi(kubernetes.config.new_client_from_config(config_file=str(bed.kubeconfig)))
        bed.start("peer", **timers).phase("configured", timeout=120)
        peer_address = addresses(mesh.get_agent(bed.node_name("peer")))[0]
        for name in names[1:]:
            agent = bed.start(name, **timers)
            if own_cpu:
                os.sched_setaffinity(agent.process.pid, {cpus[1]})
            start = agent.started_at
            marks = {}
            # Registered: the MeshAgent exists, so the operator can allocate — created
            # before the agent's libraries load (phase "created", reef.agent.early) or,
            # when that step left it, by the agent proper.
            marks["registered"] = record_time(
                agent.wait_for(lambda r: r.get("phase") in ("created", "registered"), 120)
            )
            for phase in ("address", "configured"):
                marks[phase] = record_time(agent.phase(phase, timeout=120))
            ping = bed.lab[name].run(
                "ping", "-D", "-n", "-c", "1", "-i", "0.05", "-w", "5", peer_address, check=False
            )
            stamp = re.search(r"^\[(\d+\.\d+)\].*bytes from.*icmp_seq=(\d+)", ping.stdout, re.M)
            if stamp is None:
                raise SystemExit(
                    f"no ping reply from {name}:\n{ping.stdout}\npeer agent:\n"
                    + bed.agents["peer"].tail(15)
                    + f"\n{name} agent:\n"
                    + agent.tail(15)
                )
            marks["first ping"] = float(stamp[1])
            if own_cpu:  # back with the others: the next joiner has CPU 1 to itself
                for pid in [agent.process.pid, *children(agent.process.pid)]:
                    os.sched_setaffinity(pid, {cpus[0]})
            lost.append(int(stamp[2]) - 1)
            previous = start
            row = []
            for step in STEPS:
                samples[step].append(marks[step] - previous)
                row.append(f"{step} +{marks[step] - previous:.3f}s")
                previous = marks[step]
            samples["address->ping"].append(marks["first ping"] - marks["address"])
            print(
                f"{name}: " + ", ".join(row) + f"; total {marks['first ping'] - start:.3f}s;"
                f" requests lost before the first reply: {lost[-1]}"
            )
    print_command("bench.agent_startup")
    print(f"runs: {arguments.runs}, timers: {timers or 'the test bed defaults'}")
    print(
        f"joiner on CPU {cpus[1]}, everything else on CPU {cpus[0]}"
        if own_cpu
        else f"joiner shares CPUs {cpus} with everything else"
    )
    print(f"requests lost before the first reply: {sum(lost)} in all, max {max(lost)} in a run")
    for step, values in samples.items():
        print(
            f"{step:>14}: p50 {statistics.median(values) * 1000:7.1f} ms"
            f"  max {max(values) * 1000:7.1f} ms  p95 {percentile(values, 0.95) * 1000:7.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
