"""Starting wireguard-go, for the userspace backend and for the agent's early step.

Both start it the same way: ``wireguard-go -f <if>`` (foreground, so it is a real
child the agent can supervise) in its own session with its output appended to a log
file beside its UAPI socket, so that it outlives the agent process (a pipe to a dead
agent would kill it with SIGPIPE). Standard library and reef.dataplane.waiting only:
reef.agent.early imports this before pyroute2 has loaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path

from reef.dataplane import uapi
from reef.dataplane.base import DataplaneError
from reef.dataplane.waiting import ProcessExitedError, WaitTimeoutError, wait_for_listener

SOCKET_DIR = Path("/var/run/wireguard")


def socket_path(socket_dir: Path, ifname: str) -> Path:
    return socket_dir / f"{ifname}.sock"


def log_path(socket_dir: Path, ifname: str) -> Path:
    return socket_dir / f"{ifname}.log"


def spawn(
    ifname: str,
    *,
    binary: str = "wireguard-go",
    socket_dir: Path = SOCKET_DIR,
    log_level: str = "error",
) -> subprocess.Popen[bytes]:
    """Start wireguard-go for ``ifname``; OSError when the binary cannot be run."""
    socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A socket file without a listener (wireguard-go was killed hard) would make
    # wireguard-go refuse to start.
    socket_path(socket_dir, ifname).unlink(missing_ok=True)
    with log_path(socket_dir, ifname).open("ab") as log_file:
        return subprocess.Popen(
            [binary, "-f", ifname],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "LOG_LEVEL": log_level},
        )


def await_listener(
    process: subprocess.Popen[bytes], ifname: str, socket_dir: Path, timeout: float
) -> None:
    """Return once ``process`` answers on its UAPI socket; DataplaneError if it exits
    first or does not listen within ``timeout`` seconds."""
    log = log_path(socket_dir, ifname)
    try:
        wait_for_listener(socket_path(socket_dir, ifname), timeout, pid=process.pid)
    except ProcessExitedError as exc:
        code = process.wait()
        raise DataplaneError(
            f"wireguard-go for {ifname} exited with code {code} before its UAPI"
            f" socket appeared; see {log} (is /dev/net/tun available?)"
        ) from exc
    except WaitTimeoutError as exc:
        raise DataplaneError(
            f"wireguard-go for {ifname} created no UAPI socket within {timeout} s; see {log}"
        ) from exc


def exchange(path: Path, pieces: Iterable[bytes], timeout: float) -> bytes:
    """One UAPI request, sent piece by piece on a fresh connection; the answer undecoded."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            for piece in pieces:
                sock.sendall(piece)
            buffer = bytearray()  # appended in place: a 5000-peer answer is ~1.5 MB
            while not uapi.response_complete(buffer):
                chunk = sock.recv(65536)
                if not chunk:
                    raise uapi.UapiError(f"{path} closed the connection mid-answer")
                buffer += chunk
        except OSError as exc:
            raise DataplaneError(f"cannot talk to wireguard-go on {path}: {exc}") from exc
    return bytes(buffer)
