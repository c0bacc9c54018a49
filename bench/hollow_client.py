"""The benchmark's side of bench.hollow: start a process of hollow agents, wait on what
it reports, ask it for counters; plus the API server's own count of writes.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.testbed.binaries import binary

REPO = Path(__file__).resolve().parent.parent


class HollowProcess:
    """``python -m bench.hollow`` with ``count`` agents named ``prefix0`` ... ."""

    def __init__(
        self,
        prefix: str,
        count: int,
        env: dict[str, str],
        workdir: Path,
        pythonpath: str | None = None,
    ) -> None:
        self.names = [f"{prefix}{i}" for i in range(count)]
        #: Latest device peer count per agent (from its ``peers`` lines).
        self.peers: dict[str, int] = {}
        self._replies: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        path = pythonpath or f"{REPO / 'operator'}:{REPO}"
        self._stderr = (workdir / f"hollow-{prefix}.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.hollow",
                "--count",
                str(count),
                "--prefix",
                prefix,
                "--key-root",
                str(workdir / "hollow-keys"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **env, "PYTHONPATH": f"{path}:{REPO}"},
            cwd=REPO,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            with self._lock:
                if "peers" in message:
                    self.peers[message["peers"]] = message["n"]
                else:
                    self._replies[message["reply"]] = message
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def wait_until(self, predicate: Callable[[dict[str, int]], bool], timeout: float) -> None:
        """Until ``predicate(peer counts by agent)`` holds; fails on exit or deadline."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.peers):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise SystemExit(
                        f"hollow agents {self.names[0]}...: not there within {timeout:.0f} s"
                        f" (exit code {self.process.poll()}); counts {sorted(self.peers.items())}"
                    )
                self._lock.wait(remaining)

    def ask(self, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        ident = next(self._ids)
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({**command, "id": ident}) + "\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        with self._lock:
            while ident not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise SystemExit(f"hollow process gave no answer to {command['cmd']}")
                self._lock.wait(remaining)
            return self._replies.pop(ident)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask({"cmd": "stop"}, timeout=30)
                self.process.wait(30)
            except (SystemExit, subprocess.TimeoutExpired, BrokenPipeError):
                self.process.kill()
                self.process.wait()
        self._stderr.close()


def api_writes(kubeconfig: Path) -> dict[tuple[str, str, str], float]:
    """The API server's ``apiserver_request_total`` of writes, by (verb, resource,
    subresource): every client's, read from the server itself."""
    text = subprocess.run(
        [str(binary("kubectl")), "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    totals: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = {
            part.split("=", 1)[0]: part.split("=", 1)[1].strip('"')
            for part in labels_text.split('",')
            if "=" in part
        }
        verb = labels.get("verb", "")
        if verb in ("GET", "LIST", "WATCH", "CONNECT"):
            continue
        key = (verb, labels.get("resource", ""), labels.get("subresource", ""))
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def difference(
    after: dict[tuple[str, str, str], float], before: dict[tuple[str, str, str], float]
) -> dict[tuple[str, str, str], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}
