"""Benchmark: agents in a mesh of 5000 MeshAgents — join propagation, a status storm,
steady state, memory (issue 10).

On the local bed (a real kube-apiserver on etcd, the real operator, bench.agent_common):

* ``--members`` MeshAgents in all. Most are *static* members: created through the API
  by this benchmark (a public key, no endpoint, the release finalizer — as an external
  host's ``reef join`` makes them) and given their addresses by the real operator.
* ``--hollow-processes`` x ``--hollow-per-process`` hollow agents (bench.hollow: the
  real agent code with an in-memory device), each registering its own MeshAgent.
* ``--real`` real agents (``reef agent`` in network-namespace nodes, wireguard-go).

Then it measures:

1. joins: a new MeshAgent (created like the static ones); clock from the moment a watch
   of this benchmark sees its address to the moment each agent has the peer on its
   device (hollow: the in-memory device's apply; real: the agent's ``peers`` log record,
   written after wireguard-go took the change);
2. a storm: every MeshAgent's ``status.dataplane`` written once, as fast as the API takes
   it (a rolling update: static members get a full block, agents' own objects only a
   new ``lastSync``, so their agents have nothing to correct); CPU seconds per agent
   over a fixed window from /proc, watch events each hollow agent's informer received,
   how many of them woke its loop, its syncs and its API writes;
3. steady state for ``--steady-seconds``: writes counted by the API server itself
   (``apiserver_request_total``, every client) and by the hollow agents, agent CPU;
4. memory: each real agent's resident set with all members.

They run in the order 4, 3, 4, 1, 2, 4: the joins on a quiet bed, the storm last.

Run (under the heavy-work lock)::

    python -m bench.agent_scale --members 5000 --hollow-processes 8 --hollow-per-process 25
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.config

from bench.agent_common import bench_bed, chart_timers, percentile, print_command, record_time
from bench.agent_idle import cpu_seconds, rss_mib
from bench.allocation import run_burst
from bench.hollow_client import HollowProcess, api_writes, difference
from bench.name_watch import AddressOf
from reef.api import names
from tests.agent.bed import AgentBed, AgentProcess, Record
from tests.support.mesh import MeshApi, all_allocated, wait_for_agents

NETWORK = "bench"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def ms(values: Sequence[float]) -> str:
    return (
        f"p50 {statistics.median(values) * 1000:.0f} ms, p95 {percentile(values, 0.95) * 1000:.0f}"
        f" ms, max {max(values) * 1000:.0f} ms (n={len(values)})"
    )


class Fleet:
    """Every agent of the run: hollow processes and real agents, their CPU and counters."""

    def __init__(
        self, hollows: dict[str, list[HollowProcess]], real: dict[str, AgentProcess]
    ) -> None:
        #: Hollow processes by group: "main" (this checkout's reef) and "old" (--old-*).
        self.groups = {group: processes for group, processes in hollows.items() if processes}
        self.hollows = [process for processes in self.groups.values() for process in processes]
        self.real = real

    @property
    def hollow_count(self) -> int:
        return sum(len(h.names) for h in self.hollows)

    def group_names(self, group: str) -> list[str]:
        return [name for process in self.groups[group] for name in process.names]

    def cpu(self) -> dict[str, float]:
        """CPU seconds: each group's hollow processes together; each real agent (its own
        process, not its wireguard-go) by name."""
        seconds = {
            group: sum(cpu_seconds(h.process.pid) for h in processes)
            for group, processes in self.groups.items()
        }
        return seconds | {name: cpu_seconds(a.process.pid) for name, a in self.real.items()}

    def stats(self) -> dict[str, dict[str, int]]:
        merged: dict[str, dict[str, int]] = {}
        for hollow in self.hollows:
            merged.update(hollow.ask({"cmd": "stats"})["agents"])
        return merged

    def wait_peers(self, count: int, timeout: float, marks: dict[str, int] | None = None) -> None:
        """Every agent's device holds ``count`` peers (real: a log record saying so)."""
        for hollow in self.hollows:

            def configured(peers: dict[str, int], names: list[str] = hollow.names) -> bool:
                return all(peers.get(n) == count for n in names)

            hollow.wait_until(configured, timeout)
        for name, agent in self.real.items():
            agent.wait_for(
                lambda r: r.get("peers") == count, timeout, after=(marks or {}).get(name, 0)
            )


def measure_joins(
    mesh: MeshApi, kubeconfig: Path, fleet: Fleet, size: int, joins: int
) -> dict[str, list[float]]:
    """Each join: address seen by our watch -> the peer on every agent's device; the
    latencies by group of agents ("main", "old", "real") and of all."""
    offset = time.time() - time.monotonic()  # real agents log wall time; both one clock
    by_group: dict[str, list[float]] = {}
    for index in range(joins):
        name = f"{NETWORK}-join-{index}"
        marks = {n: len(a.records) for n, a in fleet.real.items()}
        body = mesh.agent_body(name, NETWORK)
        body["metadata"]["finalizers"] = [names.RELEASE_FINALIZER]
        key = body["spec"]["publicKey"]
        with AddressOf(kubeconfig, NETWORK, name) as watch:
            mesh.custom.create_cluster_custom_object(
                names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, body
            )
            start = watch.wait(120)
        size += 1
        fleet.wait_peers(size - 1, 600, marks)  # an older agent can take minutes
        join: list[float] = []
        for group, processes in fleet.groups.items():
            for hollow in processes:
                for routed in routed_times(hollow, key, 600):
                    join.append(routed - start)
                    by_group.setdefault(group, []).append(routed - start)
        for agent_name, agent in fleet.real.items():
            routed = record_time(routed_record(agent, marks[agent_name], start + offset)) - offset
            join.append(routed - start)
            by_group.setdefault("real", []).append(routed - start)
        by_group.setdefault("all", []).extend(join)
        print(f"  join {index}: to {len(join)} agents {ms(join)}; all by {max(join) * 1000:.0f} ms")
    return by_group


def routed_times(hollow: HollowProcess, key: str, timeout: float) -> list[float]:
    """When each of the process's agents had ``key`` with its allowed IPs on its device.

    The peer count the join waited for is reached by the member's first add, with its
    key only (it is a peer before its address): the allowed IPs may follow a moment
    later. The times are the agents' own records; asking again until all are there
    (bounded) does not change them.
    """
    deadline = time.monotonic() + timeout
    while True:
        times = [t[key] for t in hollow.ask({"cmd": "routed", "keys": [key]})["routed"].values()]
        if all(t is not None for t in times):
            return times
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key}: not routed by every agent of {hollow.names[0]}'s process")
        threading.Event().wait(0.2)  # a poll of records already taken, not a measured wait


PEERS_MESSAGE = re.compile(r"peers: \+(\d+) ~(\d+) -(\d+)")


def routed_record(agent: AgentProcess, mark: int, address_seen: float) -> Record:
    """The real agent's record of writing the joiner's allowed IPs: its update (``~1``),
    or an add (``+1``) made after the address was there (both changes in one sync)."""

    def routed(record: Record) -> bool:
        found = PEERS_MESSAGE.match(str(record.get("message")))
        if found is None:
            return False
        added, updated = int(found[1]), int(found[2])
        return updated > 0 or (added > 0 and record_time(record) >= address_seen)

    return agent.wait_for(routed, 30, after=mark)


def configured(peers: dict[str, int], names: list[str], peers_at_least: int) -> bool:
    return all(peers.get(n, 0) >= peers_at_least for n in names)


def storm_patch(name: str, agent_owned: bool) -> dict[str, Any]:
    # microseconds: a write in the same second as the last must still change the object
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if agent_owned:
        return {"dataplane": {"lastSync": now}}
    return {
        "dataplane": {
            "backend": "userspace",
            "interface": "reef0",
            "listenPort": 51820,
            "peers": {"total": 4999, "healthy": 4999, "summary": "4999/4999"},
            "lastSync": now,
        }
    }


def storm(mesh: MeshApi, members: list[str], agent_owned: set[str], workers: int) -> float:
    """Every MeshAgent's status.dataplane written once; returns the seconds it took."""
    started = time.monotonic()

    def write(name: str) -> None:
        mesh.patch_agent_status(name, storm_patch(name, name in agent_owned))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(write, members))
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5000, help="MeshAgents in all")
    parser.add_argument("--hollow-processes", type=int, default=8)
    parser.add_argument("--hollow-per-process", type=int, default=25)
    parser.add_argument("--real", type=int, default=3, help="real agents in namespace nodes")
    parser.add_argument("--joins", type=int, default=5)
    parser.add_argument("--storm-window", type=float, default=60.0, help="CPU window, s")
    parser.add_argument("--steady-seconds", type=float, default=600.0)
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=None,
        help="pause before the steady window (default: the storm window). A change of"
        " peer counts is written within the agent's coalescing interval, 300 s at 5000"
        " members (reef.agent.status), so a steady window that is to see no write at all"
        " starts that long after the last change",
    )
    parser.add_argument(
        "--memory-floor",
        type=float,
        default=2500,
        help="MiB of MemAvailable below which the hollow agents are stopped (the run fails)",
    )
    parser.add_argument("--workers", type=int, default=16, help="concurrent writing clients")
    parser.add_argument("--old-processes", type=int, default=0, help="hollow agents of --old")
    parser.add_argument("--old-per-process", type=int, default=5)
    parser.add_argument(
        "--old",
        help="PYTHONPATH from which the --old-processes import reef (an older commit's"
        " operator/ and what it needs): side by side with this checkout's, same storm",
    )
    arguments = parser.parse_args()
    print_command("bench.agent_scale")
    print(f"start {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {load()}")
    real_names = [f"r{i}" for i in range(arguments.real)]
    hollow_total = (
        arguments.hollow_processes * arguments.hollow_per_process
        + arguments.old_processes * arguments.old_per_process
    )
    static = arguments.members - arguments.joins - hollow_total - arguments.real
    with bench_bed(real_names, NETWORK) as bed:
        return run(bed, arguments, static, real_names)


def run(bed: AgentBed, arguments: argparse.Namespace, static: int, real_names: list[str]) -> int:
    client = kubernetes.config.new_client_from_config(config_file=str(bed.kubeconfig))
    client.configuration.connection_pool_maxsize = 64
    mesh = MeshApi(client)
    timers = chart_timers()
    started = time.monotonic()
    run_burst(mesh, NETWORK, static, arguments.workers)
    wait_for_agents(mesh, NETWORK, all_allocated(static), timeout=900)
    print(f"{static} static members allocated in {time.monotonic() - started:.1f} s; {load()}")
    hollow_env = {
        **timers,
        "REEF_NETWORK": NETWORK,
        "REEF_KUBECONFIG": str(bed.kubeconfig),
        # Endpoint on loopback: the real nodes' wireguard-go keeps any traffic to it inside
        # their own namespace.
        "REEF_NODE_IP": "127.0.0.1",
        "REEF_LOG_LEVEL": "WARNING",
    }
    hollows: dict[str, list[HollowProcess]] = {"main": [], "old": []}
    guard = MemoryGuard(hollows, arguments.memory_floor)
    try:
        started = time.monotonic()
        real = {name: bed.start(name, **timers) for name in real_names}
        for agent in real.values():
            agent.phase("configured", timeout=600)
        plan = [
            ("main", f"{NETWORK}-h{i}-", arguments.hollow_per_process, None)
            for i in range(arguments.hollow_processes)
        ]
        plan += [
            ("old", f"{NETWORK}-o{i}-", arguments.old_per_process, arguments.old)
            for i in range(arguments.old_processes)
        ]
        for group, prefix, count, pythonpath in plan:
            # One process (its agents at once) after the other, like a DaemonSet's rolling
            # start: 200 agents listing 5000 members at once took the API server past its
            # request timeout (IncompleteRead, then relists) and to 13 GB, here.
            process = HollowProcess(prefix, count, hollow_env, bed.workdir, pythonpath)
            hollows[group].append(process)
            process.wait_until(
                functools.partial(configured, names=process.names, peers_at_least=static), 900
            )
            print(
                f"  {prefix}*: {count} agents configured at {time.monotonic() - started:.0f} s;"
                f" {load()}, {guard.available_mib():.0f} MiB available"
            )
        fleet = Fleet(hollows, real)
        size = arguments.members - arguments.joins
        fleet.wait_peers(size - 1, 1800)
        print(
            f"{fleet.hollow_count} hollow + {len(fleet.real)} real agents configured with"
            f" {size - 1} peers each in {time.monotonic() - started:.1f} s; {load()}"
        )
        # Memory first and joins last: a run that outgrows the machine (MemoryGuard) still
        # reports the phases it finished.
        phase_memory(fleet, arguments.members, "once configured")
        settle(
            arguments.storm_window if arguments.settle_seconds is None else arguments.settle_seconds
        )
        phase_steady(bed.kubeconfig, fleet, arguments.steady_seconds)
        # Again: the agents' memory still grows for some seconds after they configured
        # (docs/benchmarks.md, 2026-12-04), so the figure after the quiet window is the one.
        phase_memory(fleet, arguments.members, "after the steady window")
        # Joins before the storm: 5000 status writes to 200 watchers leave the API server
        # a backlog of a million watch events, and a join behind it measures that backlog
        # (2026-12-08: p95 15 s sixty seconds after the storm), not the agents.
        if arguments.joins:
            print("1. joins (address seen by a watch -> peer on each agent's device):")
            latencies = measure_joins(mesh, bed.kubeconfig, fleet, size, arguments.joins)
            for group, values in latencies.items():
                print(f"   all joins, {group} agents: {ms(values)} (target p95 < 1 s)")
            print(f"   {load()}")
            settle(arguments.storm_window)
        agent_owned = set(fleet.stats()) | {bed.node_name(n) for n in real_names}
        phase_storm(mesh, fleet, agent_owned, arguments)
        phase_memory(fleet, arguments.members, "after the storm")
        print(f"end {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {load()}")
    finally:
        guard.stop()
        for processes in hollows.values():
            for hollow in processes:
                hollow.stop()
    return 0


class MemoryGuard:
    """Kills the hollow processes (ours) when the machine runs short of memory, so a run
    that outgrows it fails instead of pushing others' work into the OOM killer; their
    exit ends every wait of the run."""

    def __init__(self, hollows: dict[str, list[HollowProcess]], floor_mib: float) -> None:
        self._hollows = hollows
        self._floor = floor_mib
        self._stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    @staticmethod
    def available_mib() -> float:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
        return float("inf")

    def _watch(self) -> None:
        while not self._stop.wait(2.0):  # a sampling period, not a wait for an event
            if self.available_mib() < self._floor:
                print(f"memory guard: {self.available_mib():.0f} MiB left; stopping the run")
                for processes in self._hollows.values():
                    for hollow in processes:
                        hollow.process.kill()
                return

    def stop(self) -> None:
        self._stop.set()


class Window:
    """CPU and hollow counters from its start to :meth:`close`."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.cpu, self.stats = fleet.cpu(), fleet.stats()
        self.started = time.monotonic()

    def close(self) -> None:
        self.seconds = time.monotonic() - self.started
        self.cpu_after, self.stats_after = self.fleet.cpu(), self.fleet.stats()

    def counts(self, key: str) -> str:
        texts = []
        for group in self.fleet.groups:
            values = [
                self.stats_after[n][key] - self.stats.get(n, {}).get(key, 0)
                for n in self.fleet.group_names(group)
            ]
            texts.append(
                f"{group}: mean {statistics.mean(values):.1f}, min {min(values)}, max {max(values)}"
            )
        return "; ".join(texts)

    def cpu_text(self) -> str:
        fleet = self.fleet
        texts = []
        for group in fleet.groups:
            seconds = (self.cpu_after[group] - self.cpu[group]) / len(fleet.group_names(group))
            share = 100 * seconds / self.seconds
            texts.append(f"{group} {seconds:.3f} s per hollow agent ({share:.2f} % of a core)")
        for name in fleet.real:
            seconds = self.cpu_after[name] - self.cpu[name]
            texts.append(f"real {name} {seconds:.2f} s ({100 * seconds / self.seconds:.2f} %)")
        return ", ".join(texts)


def phase_storm(
    mesh: MeshApi, fleet: Fleet, agent_owned: set[str], arguments: argparse.Namespace
) -> None:
    members = sorted(b["metadata"]["name"] for b in mesh.agents(NETWORK))
    window = Window(fleet)
    took = storm(mesh, members, agent_owned, arguments.workers)
    # A fixed window from the storm's start: the agents' work may trail the writes.
    threading.Event().wait(max(0.0, window.started + arguments.storm_window - time.monotonic()))
    window.close()
    print(
        f"2. storm: {len(members)} status writes in {took:.1f} s ({len(members) / took:.0f}/s);"
        f" CPU over {window.seconds:.0f} s from its start: {window.cpu_text()}; {load()}"
    )
    for key, what in COUNTED.items():
        print(f"   {what} per hollow agent: {window.counts(key)}")


COUNTED = {
    "events": "watch events received",
    "wakeups": "loop wake-ups",
    "syncs": "syncs",
    "writes": "API writes",
}


def phase_steady(kubeconfig: Path, fleet: Fleet, seconds: float) -> None:
    writes_before = api_writes(kubeconfig)
    window = Window(fleet)
    threading.Event().wait(seconds)  # the measured quiet period itself
    window.close()
    writes = difference(api_writes(kubeconfig), writes_before)
    print(f"3. steady {window.seconds:.0f} s: CPU {window.cpu_text()}; {load()}")
    print(f"   API server writes (all clients): {sum(writes.values()):.0f} {writes or ''}")
    for key, what in COUNTED.items():
        print(f"   {what} per hollow agent: {window.counts(key)}")


def phase_memory(fleet: Fleet, members: int, when: str) -> None:
    for name, agent in fleet.real.items():
        pid = agent.process.pid
        print(
            f"4. real agent {name} with {members} members, {when}: RSS {rss_mib(pid):.1f}"
            f" MiB (peak {peak_mib(pid):.1f} MiB; target < 60 MB)"
        )
    for group, processes in fleet.groups.items():
        rss = [rss_mib(h.process.pid) / len(h.names) for h in processes]
        print(f"   {group} hollow processes: RSS per hollow agent {statistics.mean(rss):.1f} MiB")


def settle(seconds: float) -> None:
    """A pause between phases so one's rate-limited writes do not fall into the next."""
    threading.Event().wait(seconds)


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    raise SystemExit(main())
