"""Reach the bed's API server (127.0.0.1 of the host namespace) from inside namespace nodes.

In production the agent runs with host networking: it talks to the API server and
configures WireGuard in one network namespace. In the bed each node is a network
namespace, and the API server listens on 127.0.0.1 of the *host* namespace, which a
node cannot reach. A filesystem UNIX socket crosses network namespaces, so two relays
bridge the gap without moving the API server:

    node netns: 127.0.0.1:PORT  --(node relay)-->  /tmp/.../api.sock
    host netns: /tmp/.../api.sock  --(host relay)-->  127.0.0.1:PORT (kube-apiserver)

Bytes are copied untouched (TLS end to end), so the bed's admin kubeconfig, whose
server is ``https://127.0.0.1:PORT`` with a certificate for 127.0.0.1, works unchanged
inside a node. Both relays are child processes (``python -m tests.testbed.apiproxy``)
that print ``ready`` once listening; they are stopped by PID.

Usage::

    with ApiProxy(port) as proxy:          # host relay
        proxy.attach(node)                 # node relay inside node's netns
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

_READY = b"ready\n"
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


class _NodeLike(Protocol):
    name: str

    def argv(self, *cmd: str) -> list[str]: ...


class NetnsNode(_NodeLike, Protocol):
    """A namespace node with an address on the bridge (tests/testbed/netns.py's Node)."""

    netns: str

    @property
    def underlay(self) -> ipaddress.IPv4Interface: ...


# --- the relay itself (runs in the child process) ---------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    *,
    unix_target: str | None,
    tcp_target: tuple[str, int] | None,
) -> None:
    try:
        if unix_target is not None:
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(unix_target)
        else:
            assert tcp_target is not None
            upstream_reader, upstream_writer = await asyncio.open_connection(*tcp_target)
    except OSError:
        client_writer.close()
        return
    # The relay may stop with this connection open: end it quietly (a cancelled
    # connection handler would otherwise be logged as an error at shutdown).
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
        )
    for writer in (client_writer, upstream_writer):
        writer.close()


async def _serve(mode: str, socket_path: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server: asyncio.AbstractServer
    if mode == "host":
        # unix socket in, the API server's loopback port out
        server = await asyncio.start_unix_server(
            lambda r, w: _relay(r, w, unix_target=None, tcp_target=("127.0.0.1", port)),
            path=socket_path,
        )
        os.chmod(socket_path, 0o600)
    else:
        # the node's own loopback port in, the unix socket out
        server = await asyncio.start_server(
            lambda r, w: _relay(r, w, unix_target=socket_path, tcp_target=None),
            host="127.0.0.1",
            port=port,
        )
    sys.stdout.buffer.write(_READY)
    sys.stdout.flush()
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("host", "node"))
    parser.add_argument("--socket", required=True, help="the UNIX socket between the relays")
    parser.add_argument("--port", type=int, required=True, help="the API server's port")
    arguments = parser.parse_args(argv)
    asyncio.run(_serve(arguments.mode, arguments.socket, arguments.port))
    return 0


# --- the test-side handle ------------------------------------------------------------------


def _relay_argv(mode: str, socket_path: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.testbed.apiproxy",
        mode,
        "--socket",
        str(socket_path),
        "--port",
        str(port),
    ]


def _wait_ready(process: subprocess.Popen[bytes], what: str) -> None:
    """Block until the relay prints ``ready`` (or exits, or the deadline passes)."""
    assert process.stdout is not None
    deadline = time.monotonic() + _START_TIMEOUT
    received = b""
    while not received.endswith(_READY):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([process.stdout], [], [], remaining)[0]:
            raise RuntimeError(f"{what} did not become ready within {_START_TIMEOUT:.0f}s")
        chunk = os.read(process.stdout.fileno(), 64)
        if not chunk:
            raise RuntimeError(f"{what} exited with {process.wait()} before it was ready")
        received += chunk


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


class ApiProxy:
    """The host relay plus one node relay per attached namespace node.

    With ``upstream``, the API server runs inside that namespace node instead: the
    "host" relay then runs there, and :meth:`attach_host` makes 127.0.0.1:PORT of the
    host namespace reach it (the real-node bed's control plane).
    """

    def __init__(
        self, port: int, cwd: Path | None = None, upstream: _NodeLike | None = None
    ) -> None:
        self.port = port
        self._upstream = upstream
        self._cwd = cwd or Path(__file__).resolve().parents[2]
        self._dir = Path(tempfile.mkdtemp(prefix="reef-apiproxy-"))
        self.socket_path = self._dir / "api.sock"
        self._host: subprocess.Popen[bytes] | None = None
        self._nodes: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, argv: list[str], what: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, cwd=self._cwd
        )
        try:
            _wait_ready(process, what)
        except BaseException:
            _stop(process)
            raise
        return process

    def start(self) -> ApiProxy:
        argv = _relay_argv("host", self.socket_path, self.port)
        if self._upstream is not None:
            argv = self._upstream.argv(*argv)
        self._host = self._spawn(argv, "API server relay")
        return self

    def attach_host(self) -> None:
        """Make 127.0.0.1:PORT of the host namespace reach an ``upstream`` API server."""
        self._nodes["<host>"] = self._spawn(
            _relay_argv("node", self.socket_path, self.port), "API relay on the host"
        )

    def attach(self, node: _NodeLike) -> None:
        """Make 127.0.0.1:PORT inside ``node`` reach the API server."""
        if node.name in self._nodes:
            return
        argv = node.argv(*_relay_argv("node", self.socket_path, self.port))
        self._nodes[node.name] = self._spawn(argv, f"API relay in node {node.name}")

    def detach(self, node: _NodeLike) -> None:
        process = self._nodes.pop(node.name, None)
        if process is not None:
            _stop(process)

    def stop(self) -> None:
        for name in list(self._nodes):
            _stop(self._nodes.pop(name))
        if self._host is not None:
            _stop(self._host)
            self._host = None
        self.socket_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._dir.rmdir()

    def __enter__(self) -> ApiProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
