"""Wait for a file to appear, or a process to die, without polling.

wireguard-go signals readiness only by creating its UAPI socket. Instead of
sleeping in a loop we watch the directory with inotify and the child with a
pidfd, and block in ``select`` until either fires or the deadline passes.
The standard library has no inotify binding; two libc calls via ctypes are
smaller than a dependency.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import time
from pathlib import Path

_IN_CREATE = 0x100
_IN_MOVED_TO = 0x80
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC


def _load_libc() -> ctypes.CDLL:
    """The C library's inotify calls. The interpreter is linked to libc, so its own symbol
    table has them (``CDLL(None)``); ``ctypes.util.find_library`` would cost ≈ 7 ms of
    imports and an ``ldconfig -p`` run on the agent's way to its first packet."""
    for name in (None, "libc.so.6"):
        library = ctypes.CDLL(name, use_errno=True)
        if hasattr(library, "inotify_init1"):
            return library
    raise OSError("no inotify_init1 in the C library")


_libc = _load_libc()


class WaitTimeoutError(TimeoutError):
    """The awaited file did not appear before the deadline."""


class ProcessExitedError(RuntimeError):
    """The process that should have created the file exited first."""

    def __init__(self, message: str, returncode: int | None) -> None:
        super().__init__(message)
        self.returncode = returncode


def _inotify_watch(directory: Path) -> int:
    fd: int = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"inotify_init1: {os.strerror(err)}")
    wd = _libc.inotify_add_watch(fd, os.fsencode(directory), _IN_CREATE | _IN_MOVED_TO)
    if wd < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, f"inotify_add_watch {directory}: {os.strerror(err)}")
    return fd


def wait_for_path(path: Path, timeout: float, pid: int | None = None) -> None:
    """Return once ``path`` exists; raise :class:`WaitTimeoutError` after ``timeout``
    seconds, or :class:`ProcessExitedError` if process ``pid`` (our child) ends first.

    The parent directory must exist (it is watched, not the file).
    """
    deadline = time.monotonic() + timeout
    watch = _inotify_watch(path.parent)
    pidfd = os.pidfd_open(pid) if pid is not None else None
    try:
        while True:
            # Checked after the watch is armed: a file created in between is not missed.
            if path.exists():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(f"{path} did not appear within {timeout:.1f} s")
            fds = [watch] if pidfd is None else [watch, pidfd]
            ready, _, _ = select.select(fds, [], [], remaining)
            if pidfd is not None and pidfd in ready and not path.exists():
                raise ProcessExitedError(f"process {pid} exited before creating {path}", None)
            if watch in ready:
                _drain(watch)
    finally:
        os.close(watch)
        if pidfd is not None:
            os.close(pidfd)


#: First and longest pause between connects refused by a socket that is bound, not listening.
_REFUSED_FIRST_PAUSE = 0.001
_REFUSED_MAX_PAUSE = 0.05


def wait_for_listener(path: Path, timeout: float, pid: int | None = None) -> None:
    """Return once a UNIX stream socket at ``path`` accepts connections.

    wireguard-go's socket file appears at ``bind()``, a moment before ``listen()``; a
    connect in between is refused. On a loaded machine that moment lasted long enough
    for the agent's first request to fail and the whole configuration to wait for its
    2 s error retry. The file is awaited on inotify; a refused connect is retried after
    a pause that doubles from 1 ms (a back-off on an error, capped at 50 ms), spent
    waiting on the child's pidfd so that its exit ends the wait at once.
    Raises like :func:`wait_for_path`.
    """
    deadline = time.monotonic() + timeout
    wait_for_path(path, timeout, pid)
    pidfd = os.pidfd_open(pid) if pid is not None else None
    pause = _REFUSED_FIRST_PAUSE
    try:
        while True:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(path))
                    return
                except ConnectionRefusedError:
                    pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(f"{path} accepted no connection within {timeout:.1f} s")
            watched = [] if pidfd is None else [pidfd]
            ready, _, _ = select.select(watched, [], [], min(pause, remaining))
            if ready:
                raise ProcessExitedError(f"process {pid} exited before listening on {path}", None)
            pause = min(pause * 2, _REFUSED_MAX_PAUSE)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        return


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Block until process ``pid`` exits (True) or ``timeout`` passes (False).

    Works for any process, not only children (pidfd), so an adopted
    wireguard-go can be awaited too. Does not reap; the caller does if it is
    its child.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)
