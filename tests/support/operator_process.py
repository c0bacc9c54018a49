"""Run the real operator (``python -m reef operator``) as a child process of the test.

Tests kill it with SIGKILL, run two at once, restart it: so it is a real process,
never an in-process object. Readiness is kopf's own liveness endpoint answering.
"""

from __future__ import annotations

import http.client
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.testbed.controlplane import free_port
from tests.testbed.processes import ManagedProcess, wait_until_ready

LEDGER_NAMESPACE = "reef-system"


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        *,
        name: str = "operator",
        namespace: str = LEDGER_NAMESPACE,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.health_port = free_port()
        self._runs = 0
        self._name = name
        self._log_dir = log_dir
        self._env = {
            **os.environ,
            "REEF_KUBECONFIG": str(kubeconfig),
            "REEF_NAMESPACE": namespace,
            "REEF_LOG_FORMAT": "text",
            "REEF_LOG_LEVEL": "INFO",
            "REEF_BIND_ADDRESS": "127.0.0.1",
            "REEF_METRICS_PORT": "0",
            "REEF_HEALTH_PORT": str(self.health_port),
            "REEF_REPAIR_INTERVAL_SECONDS": "5",
            "REEF_RELEASE_GRACE_SECONDS": "2",
            **(env or {}),
        }
        self.process: ManagedProcess | None = None

    def start(self, *, wait: bool = True) -> OperatorProcess:
        self._runs += 1
        self.process = ManagedProcess(
            f"{self._name}#{self._runs}",
            [sys.executable, "-m", "reef", "operator"],
            self._log_dir / f"{self._name}.log",
            env=self._env,
        )
        self.process.start()
        if wait:
            wait_until_ready(
                self.process, self._healthy, timeout=60, what=f"{self._name} answering /healthz"
            )
        return self

    def _healthy(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.health_port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers run, as in an OOM kill or node loss."""
        if self.process is not None and self.process.returncode() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait_exit(30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=10)

    def log(self) -> str:
        return self.process.log_tail(200) if self.process else ""
