"""What the real-node benchmarks read on a node: container start, agent log, pings.

All on this machine's one clock: the kernel's process start time, the agent's JSON log
record times and ``ping -D`` reply times are all wall-clock seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from tests.incluster.realcluster import RealCluster
from tests.testbed.clients import KubeCLI, KubeTarget
from tests.testbed.controlplane import CONTEXT_NAME
from tests.testbed.image import IMAGE
from tests.testbed.kubelet_nodes import KubeletCluster, KubeletNode


@contextlib.contextmanager
def real_nodes(count: int) -> Iterator[tuple[KubeletCluster, RealCluster]]:
    """The real-node bed of ``count`` kubelets and, on it, the chart's release (not yet
    installed) with the image built from this tree."""
    with KubeletCluster(count) as bed:
        target = KubeTarget(bed.kubeconfig, CONTEXT_NAME, bed.server, local_bed=True)
        repository, tag = IMAGE.rsplit(":", 1)
        yield (
            bed,
            RealCluster(
                KubeCLI.kubectl(target), KubeCLI.helm(target), repository, tag, "Never", bed=bed
            ),
        )


POLL_SECONDS = 0.02
"""How often a poll looks again: the resolution of the waits, not a measured time."""

_T = TypeVar("_T")


class StepTimeoutError(RuntimeError):
    """A step of a join did not happen before its deadline."""


def poll(check: Callable[[], _T | None], timeout: float, what: str) -> _T:
    """``check()`` again every POLL_SECONDS until it returns something, or fail."""
    deadline = time.monotonic() + timeout
    while (found := check()) is None:
        if time.monotonic() > deadline:
            raise StepTimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(POLL_SECONDS)
    return found


def container_start(node: KubeletNode, container_id: str) -> float:
    """Wall-clock time the container's first process was forked (10 ms kernel ticks).

    Finer than the pod's ``startedAt`` (whole seconds); runc forks the process at
    create, so this is at most the create → start gap early.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    starts = []
    for pid in node.pids():
        try:
            if container_id not in Path(f"/proc/{pid}/cgroup").read_text():
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # field 22, start time in ticks since boot; fields after the command's ")"
        starts.append(int(stat.rsplit(")", 1)[1].split()[19]) / ticks)
    if not starts:
        raise StepTimeoutError(f"no process of container {container_id} on {node.name}")
    since_start = time.clock_gettime(time.CLOCK_BOOTTIME) - min(starts)
    return time.time() - since_start


class AgentLog:
    """The JSON records of one agent container, read from the kubelet's CRI log file."""

    def __init__(self, node: KubeletNode, namespace: str, pod: str, uid: str) -> None:
        self.directory = node.layout.pod_logs_dir / f"{namespace}_{pod}_{uid}" / "agent"
        self.records: list[dict[str, object]] = []
        self._offset = 0
        self._partial = ""

    def read(self) -> list[dict[str, object]]:
        files = sorted(self.directory.glob("*.log"))
        if not files:
            return self.records
        with files[0].open() as log:
            log.seek(self._offset)
            data = log.read()
            self._offset = log.tell()
        lines = data.split("\n")
        if lines and lines[-1]:  # a line still being written
            self._offset -= len(lines[-1].encode())
        for line in lines[:-1]:
            # CRI format: TIME STREAM P|F CONTENT; P is a part of a longer line
            parts = line.split(" ", 3)
            if len(parts) < 4:
                continue
            self._partial += parts[3]
            if parts[2] == "P":
                continue
            text, self._partial = self._partial, ""
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict):
                self.records.append(record)
        return self.records

    def first(self, predicate: Callable[[dict[str, object]], bool]) -> dict[str, object] | None:
        return next((r for r in self.read() if predicate(r)), None)

    def wait_for(
        self, predicate: Callable[[dict[str, object]], bool], timeout: float, what: str
    ) -> dict[str, object]:
        return poll(lambda: self.first(predicate), timeout, what)

    def tail(self, count: int = 15) -> str:
        return "\n".join(json.dumps(r) for r in self.read()[-count:])


class PingStream:
    """``ping -D`` every 50 ms from one node to one address, restarted when ping exits
    (it does at once while the node has no route to the mesh); keeps reply times."""

    def __init__(self, node: KubeletNode, address: str) -> None:
        self.node = node
        self.address = address
        self.replies: list[float] = []
        self._stop = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        argv = self.node.netns_node.argv("ping", "-D", "-n", "-O", "-i", "0.05", self.address)
        while not self._stop.is_set():
            self._process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            if self._stop.is_set():  # stop() came between the check and the start
                self._process.terminate()
            assert self._process.stdout is not None
            for line in self._process.stdout:
                if "bytes from" in line and line.startswith("["):
                    self.replies.append(float(line[1 : line.index("]")]))
            self._process.wait()
            # no route yet: try again at ping's own interval, not in a tight loop
            self._stop.wait(0.05)

    def first_reply_after(self, moment: float) -> float | None:
        return next((t for t in list(self.replies) if t > moment), None)

    def stop(self) -> None:
        self._stop.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        self._thread.join(timeout=10)
