"""Waiting for wireguard-go's socket: on inotify and the child's pidfd, never a sleep loop."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reef.dataplane.waiting import (
    ProcessExitedError,
    WaitTimeoutError,
    wait_for_exit,
    wait_for_listener,
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


def test_a_socket_bound_but_not_listening_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "wg0.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))  # the file exists now; a connect is refused until listen()
    outcome: list[BaseException | None] = []

    def wait() -> None:
        try:
            wait_for_listener(path, timeout=30)
            outcome.append(None)
        except BaseException as error:  # reported to the test thread below
            outcome.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        # A correct wait cannot end while the socket refuses; a wait on the file alone would.
        waiter.join(0.3)
        assert waiter.is_alive(), f"returned before listen(): {outcome}"
        server.listen()
        waiter.join(30)
        assert outcome == [None]
    finally:
        server.close()
        waiter.join(30)


def test_a_socket_that_never_listens_times_out(tmp_path: Path) -> None:
    path = tmp_path / "wg0.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        with pytest.raises(WaitTimeoutError):
            wait_for_listener(path, timeout=0.1)


def test_a_child_that_binds_and_exits_without_listening_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "wg0.sock"
    script = (
        "import socket, sys; s = socket.socket(socket.AF_UNIX);"
        f" s.bind({str(path)!r}); print('bound', flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"bound\n"
        assert child.stdin is not None
        child.stdin.close()  # the child exits; its socket file stays, refusing
        with pytest.raises(ProcessExitedError):
            wait_for_listener(path, timeout=30, pid=child.pid)
    finally:
        child.kill()
        child.wait()
