"""Waiting for wireguard-go's socket: on inotify and the child's pidfd, never a sleep loop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reef.dataplane.waiting import (
    ProcessExitedError,
    WaitTimeoutError,
    wait_for_exit,
    wait_for_path,
)


def test_returns_when_a_child_creates_the_file(tmp_path: Path) -> None:
    target = tmp_path / "wg0.sock"
    child = subprocess.Popen(["sh", "-c", f"exec 3>'{target}'; exec cat"], stdin=subprocess.PIPE)
    try:
        wait_for_path(target, timeout=30, pid=child.pid)
        assert target.exists()
    finally:
        child.kill()
        child.wait()


def test_a_child_that_exits_first_is_reported_not_waited_out(tmp_path: Path) -> None:
    child = subprocess.Popen(["sh", "-c", "exit 3"])
    with pytest.raises(ProcessExitedError):
        wait_for_path(tmp_path / "never.sock", timeout=30, pid=child.pid)
    assert child.wait() == 3


def test_a_file_that_never_appears_times_out(tmp_path: Path) -> None:
    with pytest.raises(WaitTimeoutError):
        wait_for_path(tmp_path / "never.sock", timeout=0.05)


def test_wait_for_exit_sees_a_process_end() -> None:
    child = subprocess.Popen(["true"])
    assert wait_for_exit(child.pid, timeout=30)
    child.wait()
