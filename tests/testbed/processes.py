"""Child processes of the test bed: started with a log file, stopped by PID.

Every process the bed starts is its child, in its own session (so a Ctrl-C
in the terminal reaches pytest, which tears the bed down in order, and not
the children directly), and asks the kernel to SIGKILL it if its parent dies
(PR_SET_PDEATHSIG) — so even a SIGKILLed test run leaves no process behind.
SIGKILL, not SIGTERM: nobody would be left to escalate if a graceful
shutdown hangs (kube-apiserver's does once etcd is gone), and the bed's data
is thrown away anyway.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class BedProcessError(RuntimeError):
    """A bed process exited, or never became ready, while we waited for it."""


def _die_with_parent() -> None:
    """Runs in the child between fork and exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    """One child process whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self._running().pid

    def _running(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 — no threads fork here
            )

    def returncode(self) -> int | None:
        """The exit status, or None while the process runs."""
        return self._running().poll()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the process to exit; True if it did."""
        try:
            self._running().wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns once it is reaped."""
        if self._popen is None or self._popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._popen.pid, signal.SIGTERM)
        if self.wait_exit(grace):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._popen.pid, signal.SIGKILL)
        self._popen.wait()


def wait_until_ready(
    process: ManagedProcess,
    is_ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    poll_interval: float = 0.1,
) -> None:
    """Wait until `is_ready()` holds, failing early if `process` exits.

    Between two readiness probes we wait on the process's own exit (with a
    short timeout) rather than sleeping: a crash ends the wait at once and is
    reported with the tail of the process's log.
    """
    deadline = time.monotonic() + timeout
    while True:
        if is_ready():
            return
        code = process.returncode()
        if code is not None:
            raise BedProcessError(
                f"{process.name} exited with status {code} before {what}; "
                f"last lines of {process.log_path}:\n{process.log_tail()}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BedProcessError(
                f"{what} did not happen within {timeout:.0f}s; "
                f"last lines of {process.log_path}:\n{process.log_tail()}"
            )
        process.wait_exit(min(poll_interval, remaining))
