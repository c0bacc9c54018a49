"""Benchmark: a new node's peer reaches the devices of all N other nodes — how fast?

N agents form a mesh; then nodes join one at a time. For each join, the clock starts
when the new agent sees its permanent address (its ``address`` log record) and stops,
per existing node, at that node's ``peers`` record applying the new peer to its device
(wall-clock times from the agents' JSON logs, one machine, one clock). Run::

    python -m bench.agent_propagation --nodes 10 --joins 5
"""

from __future__ import annotations

import argparse
import statistics

from bench.agent_common import bench_bed, percentile, print_command, record_time
from tests.agent.bed import Record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10, help="N existing nodes")
    parser.add_argument("--joins", type=int, default=5, help="nodes joining one by one")
    arguments = parser.parse_args()
    existing = [f"n{i}" for i in range(arguments.nodes)]
    joiners = [f"j{i}" for i in range(arguments.joins)]
    latencies: list[float] = []
    worst: list[float] = []
    with bench_bed([*existing, *joiners]) as bed:
        for name in existing:
            bed.start(name)
        for name in existing:  # the mesh of N is complete on every node
            bed.agents[name].wait_for(lambda r: r.get("peers") == arguments.nodes - 1, 300)
        members = list(existing)
        for name in joiners:
            marks = {m: len(bed.agents[m].records) for m in members}
            agent = bed.start(name)
            start = record_time(agent.phase("address", timeout=120))
            size = len(members)

            def applied(record: Record, size: int = size) -> bool:
                return record.get("phase") == "peers" and record.get("peers") == size

            join = [
                record_time(bed.agents[m].wait_for(applied, timeout=60, after=marks[m])) - start
                for m in members
            ]
            latencies.extend(join)
            worst.append(max(join))
            print(
                f"{name} joins {size} nodes: p50 {statistics.median(join) * 1000:.1f} ms,"
                f" all {max(join) * 1000:.1f} ms"
            )
            members.append(name)
    print_command("bench.agent_propagation")
    print(f"existing nodes: {arguments.nodes}, joins: {arguments.joins}, samples: {len(latencies)}")
    print(
        f"address seen by the new node -> peer applied on an existing node:"
        f" p50 {statistics.median(latencies) * 1000:.1f} ms,"
        f" p95 {percentile(latencies, 0.95) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    print(
        f"-> on all N nodes (per join): p50 {statistics.median(worst) * 1000:.1f} ms,"
        f" p95 {percentile(worst, 0.95) * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
