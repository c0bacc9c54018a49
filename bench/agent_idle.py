"""Benchmark: an idle agent's footprint — resident memory (the agent and its wireguard-go)
and CPU — in a mesh of N namespace nodes.

The agents run with the chart's timer settings (the test bed's defaults check health
every second), all configured with every peer; after a settling pause, each agent's and
its wireguard-go's CPU time (``/proc/<pid>/stat``) is sampled over a window and the
resident set (``VmRSS``) read at its end. CPU is a share of one core. Run::

    python -m bench.agent_idle --nodes 4 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from bench.agent_common import bench_bed, chart_timers, children, print_command

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=15.0)
    arguments = parser.parse_args()
    timers = chart_timers()
    names = [f"n{i}" for i in range(arguments.nodes)]
    with bench_bed(names) as bed:
        agents = {name: bed.start(name, **timers) for name in names}
        for agent in agents.values():
            agent.phase("configured", timeout=120)
        # every node has every other as a peer before the window starts
        deadline = time.monotonic() + 120
        while any(len(bed.wg_peers(name)) < len(names) - 1 for name in names):
            if time.monotonic() > deadline:
                raise SystemExit("the mesh did not form within 120 s")
            time.sleep(0.5)
        time.sleep(arguments.settle)  # start-up work (first status writes) is not idle
        pids = {name: [a.process.pid, *children(a.process.pid)] for name, a in agents.items()}
        before = {name: [cpu_seconds(p) for p in ps] for name, ps in pids.items()}
        started = time.monotonic()
        time.sleep(arguments.seconds)
        wall = time.monotonic() - started
        rows = []
        for name, ps in pids.items():
            cpu = [cpu_seconds(p) - b for p, b in zip(ps, before[name], strict=True)]
            rss = [rss_mib(p) for p in ps]
            rows.append((name, rss[0], sum(rss[1:]), 100 * cpu[0] / wall, 100 * sum(cpu) / wall))
            print(
                f"{name}: agent {rss[0]:.1f} MiB + wireguard-go {sum(rss[1:]):.1f} MiB"
                f" = {sum(rss):.1f} MiB; CPU agent {rows[-1][3]:.3f} %,"
                f" with wireguard-go {rows[-1][4]:.3f} % ({len(ps) - 1} child process)"
            )
    print_command("bench.agent_idle")
    print(f"nodes: {arguments.nodes}, window {wall:.0f} s, timers {timers}")
    print(
        f"RSS agent + wireguard-go: median {statistics.median(r[1] + r[2] for r in rows):.1f} MiB,"
        f" max {max(r[1] + r[2] for r in rows):.1f} MiB"
    )
    print(
        f"CPU (share of one core, agent + wireguard-go): median"
        f" {statistics.median(r[4] for r in rows):.3f} %, max {max(r[4] for r in rows):.3f} %"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
