"""Real agents in namespace nodes: the bed the agent tests, benchmarks and demo share.

Each node is a network namespace (tests/testbed/netns.py) with an API relay
(tests/testbed/apiproxy.py), so ``python -m reef agent`` runs inside it exactly as
with host networking in production: the API server and the WireGuard interface in
the same namespace. Agents are child processes started with ``ip netns exec``; their
JSON log lines are read as they come, so tests wait on what an agent *did* (a log
record) instead of sleeping. Everything is stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.testbed import netns
from tests.testbed.apiproxy import ApiProxy
from tests.testbed.netns import Lab, Node, netns_nodes

Record = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]


class AgentProcess:
    """One ``reef agent`` run inside a node; its log records are collected live."""

    def __init__(
        self,
        node: Node,
        env: dict[str, str],
        log_path: Path,
        command: Sequence[str] = ("-m", "reef", "agent"),
    ) -> None:
        """``command``: the interpreter's arguments (a test may run the entry point its way)."""
        self.node = node
        self.records: list[Record] = []
        self._env = env
        self._log_path = log_path
        self._lock = threading.Condition()
        self.started_at = time.time()
        self.process = subprocess.Popen(
            node.argv(sys.executable, *command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self._log_path.open("ab") as log:
            for raw in self.process.stdout:
                log.write(raw)
                log.flush()
                try:
                    record = json.loads(raw)
                except ValueError:
                    record = {"message": raw.decode(errors="replace").rstrip()}
                record["_received"] = time.time()
                with self._lock:
                    self.records.append(record)
                    self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def wait_for(
        self, predicate: Callable[[Record], bool], timeout: float = 60.0, after: int = 0
    ) -> Record:
        """The first record from index ``after`` matching ``predicate``; fails on exit/deadline."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for record in self.records[after:]:
                    if predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.process.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(
                        f"agent on {self.node.name}: no matching log record"
                        f" (exit code {self.process.poll()}); last lines:\n{self.tail()}"
                    )
                self._lock.wait(remaining)

    def phase(self, phase: str, timeout: float = 60.0, after: int = 0) -> Record:
        return self.wait_for(lambda r: r.get("phase") == phase, timeout, after)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(str(r.get("message")) for r in self.records[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(5)
        return self.process.returncode


@dataclass
class AgentBed:
    """Namespace nodes with API relays, and the agents running in them."""

    lab: Lab
    proxy: ApiProxy
    kubeconfig: Path
    network: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    agents: dict[str, AgentProcess] = field(default_factory=dict)
    streams: list[subprocess.Popen[str]] = field(default_factory=list)

    def node(self, name: str) -> Node:
        return self.lab[name]

    def agent_env(self, node: Node, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "REEF_NODE_NAME": self.node_name(node.name),
            "REEF_NETWORK": self.network,
            "REEF_INTERFACE": node.wg_ifname,
            "REEF_KEY_DIR": str(self.workdir / "keys" / node.name),
            "REEF_NODE_IP": str(node.underlay.ip),
            "REEF_KUBECONFIG": str(self.kubeconfig),
            "REEF_METRICS_PORT": "0",
            "REEF_LOG_FORMAT": "json",
            "REEF_LOG_LEVEL": "INFO",
            "REEF_STATUS_MIN_INTERVAL_SECONDS": "1",
            "REEF_HEALTH_CHECK_SECONDS": "1",
            "REEF_BACKEND": "auto",
            **self.env,
            **(extra or {}),
        }

    def node_name(self, name: str) -> str:
        """The Kubernetes node (and MeshAgent) name of namespace node ``name``."""
        return f"{self.network}-{name}"

    def start(
        self, name: str, command: Sequence[str] = ("-m", "reef", "agent"), **env: str
    ) -> AgentProcess:
        node = self.lab[name]
        self.proxy.attach(node)
        log_path = self.workdir / f"agent-{name}.log"
        agent = AgentProcess(node, self.agent_env(node, env), log_path, command)
        self.agents[name] = agent
        return agent

    def stream(self, name: str, *cmd: str) -> subprocess.Popen[str]:
        """Start ``cmd`` in node ``name`` with its output piped; stopped by PID at the end."""
        process = subprocess.Popen(
            self.lab[name].argv(*cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.streams.append(process)
        return process

    def stop_all(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        for process in self.streams:
            if process.poll() is None:
                process.kill()
            process.communicate()

    # --- what the device says (wg(8) inside the node) -----------------------------

    def wg_peers(self, name: str) -> set[str]:
        node = self.lab[name]
        out = node.run("wg", "show", node.wg_ifname, "peers").stdout
        return set(out.split())

    def wg_allowed_ips(self, name: str) -> dict[str, list[str]]:
        node = self.lab[name]
        out = node.run("wg", "show", node.wg_ifname, "allowed-ips").stdout
        result = {}
        for line in out.splitlines():
            key, *nets = line.split()
            result[key] = [n for n in nets if n != "(none)"]
        return result

    def public_key(self, name: str) -> str:
        node = self.lab[name]
        return node.run("wg", "show", node.wg_ifname, "public-key").stdout.strip()

    def ifindex(self, name: str) -> int | None:
        node = self.lab[name]
        result = node.run("ip", "-o", "link", "show", node.wg_ifname, check=False)
        if result.returncode != 0:
            return None
        return int(result.stdout.split(":", 1)[0])

    def ping(self, src: str, address: str, count: int = 1, wait: float = 5) -> None:
        self.lab[src].run("ping", "-n", "-c", str(count), "-W", str(wait), address)


def wait_for_link_gone(node: Node, ifname: str, timeout: float = 30.0) -> None:
    """Block until ``ifname`` no longer exists in ``node`` (rtnetlink events, no polling).

    The subscription comes first and the existence check second (tests/testbed/netns.py's
    ``link_watch``): a deletion between the two is then either seen by the check or
    delivered as an event. (Starting ``ip monitor`` and then checking raced: the monitor
    subscribes some time after it starts, and a deletion in that gap was never seen.)
    """
    events, exists = netns.link_watch(node.netns, ifname)
    with events:
        if not exists:
            return
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([events], [], [], remaining)[0]:
                raise AssertionError(f"{ifname} still exists in {node.name} after {timeout}s")
            if ifname in netns.deleted_link_names(events.recv(65536)):
                return


@contextlib.contextmanager
def agent_bed(
    kubeconfig: Path, server: str, network: str, workdir: Path, names: Sequence[str]
) -> Iterator[AgentBed]:
    """Namespace nodes ``names`` plus the API relay; agents are started by the caller."""
    port = int(server.rsplit(":", 1)[1])
    with netns_nodes(list(names)) as lab, ApiProxy(port) as proxy:
        bed = AgentBed(lab, proxy, kubeconfig, network, workdir)
        try:
            yield bed
        finally:
            bed.stop_all()
