"""Benchmark: N MeshAgents created at once -> all hold permanent addresses.

Measures, against a real API server (the local bed, or --kubeconfig):

* wall time from the first create to the last address seen (by watch),
* creation -> status.addresses latency p50/p95/p99,
* allocations per second,
* the floor: the same N creates, each followed at once by a bare status patch from a
  minimal client (no operator) - the API server's own write rate for the same job,
* the operator's CPU seconds for the burst and its resident memory (VmRSS) after it,
* restart to ready: SIGKILL the operator with the N members in place, start it again
  and create one more MeshAgent at once; the time from the start until that agent's
  address is seen (what a node joining during an operator upgrade waits),

and prints reef's wall time over the floor's. Run::

    python -m bench.allocation --agents 1000
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes import watch

from bench.hollow_client import api_writes, difference
from reef.api import names
from tests.support.mesh import CRDS, MeshApi, addresses, ensure_namespace
from tests.support.operator_process import LEDGER_NAMESPACE, OperatorProcess
from tests.testbed.binaries import binary, ensure_binaries
from tests.testbed.controlplane import LocalControlPlane

#: The floor run's MeshAgents are of this network (none exists: no operator runs then).
FLOOR_NETWORK = "bench-floor"


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class AddressWatch:
    """Records when each agent of a network is first seen with an address.

    The watch runs in its own process: in the benchmark's process it would compete for
    the GIL with the creating threads and see events late, inflating reef's latencies.
    ``time.monotonic`` is CLOCK_MONOTONIC, so the two processes' times compare.
    """

    def __init__(self, kubeconfig: Path, network: str, expected: int, prefix: str = "") -> None:
        """Waits for ``expected`` agents whose names start with ``prefix``."""
        self.seen: dict[str, float] = {}
        context = multiprocessing.get_context("fork")
        self._results: multiprocessing.Queue[dict[str, float] | str] = context.Queue()
        ready = context.Event()
        self._process = context.Process(
            target=_watch_addresses,
            args=(kubeconfig, network, expected, self._results, ready),
            kwargs={"prefix": prefix},
            daemon=True,
        )
        self._process.start()
        if not ready.wait(60):
            raise SystemExit("the address watch did not start")

    def wait(self, timeout: float) -> None:
        try:
            outcome = self._results.get(timeout=timeout)
        except queue.Empty:
            self._process.kill()
            raise SystemExit("not every agent got an address in time") from None
        if isinstance(outcome, str):
            raise SystemExit(f"the address watch failed: {outcome}")
        self.seen = outcome


def _watch_addresses(
    kubeconfig: Path,
    network: str,
    expected: int,
    results: multiprocessing.Queue[dict[str, float] | str],
    ready: Any,
    *,
    prefix: str,
) -> None:
    try:
        mesh = MeshApi(kubernetes.config.new_client_from_config(config_file=str(kubeconfig)))
        listed = mesh.custom.list_cluster_custom_object(
            names.GROUP,
            names.VERSION,
            names.MESH_AGENT_PLURAL,
            field_selector=f"spec.network={network}",
        )
        ready.set()
        seen: dict[str, float] = {}
        stream = watch.Watch()
        for event in stream.stream(
            mesh.custom.list_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            names.MESH_AGENT_PLURAL,
            field_selector=f"spec.network={network}",
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=600,
        ):
            body = event["object"]
            name = body["metadata"]["name"]
            if name.startswith(prefix) and addresses(body) and name not in seen:
                seen[name] = time.monotonic()
                if len(seen) >= expected:
                    stream.stop()
                    break
        results.put(seen)
    except Exception as error:  # reported by wait(): a benchmark must not hang silently
        results.put(repr(error))


def create_agent(mesh: MeshApi, name: str, network: str) -> None:
    body = mesh.agent_body(name, network)
    # As the node agent does: the release finalizer is set at creation.
    body["metadata"]["finalizers"] = [names.RELEASE_FINALIZER]
    mesh.custom.create_cluster_custom_object(
        names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, body
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of a process now (VmRSS of /proc/PID/status), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for process {pid}")


def run_burst(
    mesh: MeshApi,
    network: str,
    count: int,
    workers: int,
    after_create: Callable[[str], None] | None = None,
) -> tuple[dict[str, float], float]:
    """Create ``count`` agents from ``workers`` threads; returns create start times and t0."""
    started: dict[str, float] = {}
    agent_names = [f"{network}-{i:05d}" for i in range(count)]

    def create(name: str) -> None:
        started[name] = time.monotonic()
        create_agent(mesh, name, network)
        if after_create is not None:
            after_create(name)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, agent_names))
    return started, t0


def summarise(label: str, started: dict[str, float], done: dict[str, float], t0: float) -> float:
    latencies = [done[name] - started[name] for name in started]
    wall = max(done.values()) - t0
    print(
        f"{label:>6}: {len(latencies)} agents, wall {wall:.2f} s, "
        f"{len(latencies) / wall:.0f} per s, latency p50 {percentile(latencies, 0.5) * 1000:.0f} ms"
        f" p95 {percentile(latencies, 0.95) * 1000:.0f} ms"
        f" p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
        f" max {max(latencies) * 1000:.0f} ms (mean {statistics.mean(latencies) * 1000:.0f} ms)"
    )
    return wall


def floor_run(mesh: MeshApi, count: int, workers: int) -> float:
    """The same creates, each followed by one bare status patch: no operator at all."""
    network = FLOOR_NETWORK
    done: dict[str, float] = {}
    lock = threading.Lock()

    def patch(name: str) -> None:
        index = int(name.rsplit("-", 1)[1])
        mesh.custom.patch_cluster_custom_object_status(
            names.GROUP,
            names.VERSION,
            names.MESH_AGENT_PLURAL,
            name,
            {"status": {"addresses": [f"100.127.{index // 256}.{index % 256}"]}},
        )
        with lock:
            done[name] = time.monotonic()

    started, t0 = run_burst(mesh, network, count, workers, after_create=patch)
    return summarise("floor", started, done, t0)


def delete_network_agents(mesh: MeshApi, network: str, workers: int) -> None:
    bodies = mesh.agents(network)

    def remove(body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        mesh.custom.patch_cluster_custom_object(
            names.GROUP,
            names.VERSION,
            names.MESH_AGENT_PLURAL,
            name,
            {"metadata": {"finalizers": None}},
        )
        mesh.delete_agent(name)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(remove, bodies))


def reef_run(
    mesh: MeshApi,
    kubeconfig: Path,
    count: int,
    workers: int,
    logs: Path,
    *,
    control_plane: Callable[[], float] = lambda: 0.0,
) -> float:
    network = "bench-reef"
    mesh.create_network(network, ["100.64.0.0/10"])
    operator = OperatorProcess(kubeconfig, logs, env={"REEF_REPAIR_INTERVAL_SECONDS": "600"})
    operator.start()
    try:
        seen = AddressWatch(kubeconfig, network, count)
        cpu_before, control_plane_before = cpu_seconds(_pid(operator)), control_plane()
        writes_before = api_writes(kubeconfig)
        started, t0 = run_burst(mesh, network, count, workers)
        seen.wait(600)
        cpu = cpu_seconds(_pid(operator)) - cpu_before
        control_plane_cpu = control_plane() - control_plane_before
        writes = difference(api_writes(kubeconfig), writes_before)
        wall = summarise("reef", started, seen.seen, t0)
        print(
            f"operator: {cpu:.1f} CPU s for the burst ({cpu / count * 1000:.2f} ms per"
            f" allocation), RSS {rss_mib(_pid(operator)):.0f} MiB after it (target < 150 MiB);"
            f" control plane {control_plane_cpu:.1f} CPU s"
        )
        print(
            "  API writes during the burst (every client's, by the API server): "
            + ", ".join(
                f"{verb} {resource}{'/' + sub if sub else ''} {value:.0f}"
                for (verb, resource, sub), value in sorted(writes.items())
            )
        )
        restart_to_ready(mesh, kubeconfig, operator, network)
        delete_network_agents(mesh, network, workers)
    finally:
        operator.stop()
    mesh.remove_network(network)
    return wall


def _pid(operator: OperatorProcess) -> int:
    if operator.process is None:
        raise SystemExit("the operator is not running")
    return operator.process.pid


def restart_to_ready(
    mesh: MeshApi, kubeconfig: Path, operator: OperatorProcess, network: str
) -> float:
    """SIGKILL the operator, start it again, create one MeshAgent at once: seconds from
    the start until that agent's address is seen."""
    name = f"{network}-restart"
    seen = AddressWatch(kubeconfig, network, 1, prefix=name)
    operator.kill()
    started = time.monotonic()
    operator.start(wait=False)
    create_agent(mesh, name, network)
    seen.wait(120)
    ready = seen.seen[name] - started
    print(
        f"restart: SIGKILL, start, one new MeshAgent -> its address {ready:.2f} s after the"
        f" start (target < 5 s); RSS {rss_mib(_pid(operator)):.0f} MiB then"
    )
    return ready


def prepare(kubeconfig: Path) -> MeshApi:
    kubectl = str(binary("kubectl"))
    subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "apply", "-f", str(CRDS)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            kubectl,
            f"--kubeconfig={kubeconfig}",
            "wait",
            "--for=condition=Established",
            "crd/meshagents.mesh.reef.dev",
            "crd/meshnetworks.mesh.reef.dev",
        ],
        check=True,
        capture_output=True,
    )
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    client.configuration.connection_pool_maxsize = 64
    ensure_namespace(kubernetes.client.CoreV1Api(client), LEDGER_NAMESPACE)
    return MeshApi(client)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=32, help="concurrent creating clients")
    parser.add_argument("--kubeconfig", type=Path, help="an existing cluster (default: local bed)")
    parser.add_argument("--logs", type=Path, help="keep the operator's log in this directory")
    arguments = parser.parse_args(argv)
    print(
        "command:",
        shlex.join(
            [
                Path(sys.executable).name,
                "-m",
                "bench.allocation",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
    )
    with tempfile.TemporaryDirectory(prefix="reef-bench-") as scratch:
        logs = arguments.logs or Path(scratch)
        logs.mkdir(parents=True, exist_ok=True)
        if arguments.kubeconfig is None:
            ensure_binaries()
            with LocalControlPlane() as bed:
                pids = bed.pids()
                return _measure(
                    bed.kubeconfig,
                    arguments,
                    logs,
                    lambda: sum(cpu_seconds(pid) for pid in pids.values()),
                )
        return _measure(arguments.kubeconfig, arguments, logs)


def _measure(
    kubeconfig: Path,
    arguments: argparse.Namespace,
    logs: Path,
    control_plane: Callable[[], float] = lambda: 0.0,
) -> int:
    """Floor, then reef; ``control_plane``: CPU seconds of the bed's etcd,
    kube-apiserver and kube-controller-manager so far (0 on a cluster of someone else's)."""
    mesh = prepare(kubeconfig)
    control_plane_before = control_plane()
    floor = floor_run(mesh, arguments.agents, arguments.workers)
    print(f"  floor: control plane {control_plane() - control_plane_before:.1f} CPU s")
    delete_network_agents(mesh, FLOOR_NETWORK, arguments.workers)
    reef = reef_run(
        mesh, kubeconfig, arguments.agents, arguments.workers, logs, control_plane=control_plane
    )
    print(f"ratio reef/floor wall time: {reef / floor:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
