"""The agent's HTTP endpoint: Prometheus ``/metrics`` plus the kubelet's probes.

- ``/healthz`` (liveness) asks the agent's event loop to run a no-op and answers 200 only if
  it ran within :data:`LIVENESS_TIMEOUT_SECONDS`: a wedged loop (a blocking call that never
  returns) gets the container restarted, a busy one does not.
- ``/readyz`` (readiness) answers 200 only while the agent reports itself ready — for the
  agent, "the WireGuard interface is configured with the permanent address" — so a
  DaemonSet rollout (and ``helm install --wait``) waits for real configuration, not for a
  process that merely started.

It runs on its own daemon thread, so a probe never waits for the loop's own work.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from reef.observability.metrics import exposition

#: How long the event loop may take to run a no-op before liveness fails.
LIVENESS_TIMEOUT_SECONDS = 5.0

#: Answers (ready, why) — the reason is the probe's body, so ``kubectl describe`` shows it.
Readiness = Callable[[], tuple[bool, str]]


def _loop_responds(loop: asyncio.AbstractEventLoop, timeout: float) -> bool:
    ran = threading.Event()
    try:
        loop.call_soon_threadsafe(ran.set)
    except RuntimeError:  # the loop is closed
        return False
    return ran.wait(timeout)


class ProbeServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one port."""

    def __init__(self, port: int, address: str = "0.0.0.0") -> None:
        self.port = port
        self.address = address
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readiness: Readiness = lambda: (False, "starting")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop, readiness: Readiness) -> None:
        """Probe this event loop and ask ``readiness`` (called once the loop runs)."""
        self._loop = loop
        self._readiness = readiness

    def alive(self) -> tuple[bool, str]:
        if self._loop is None:
            return True, "starting"  # before the loop exists there is nothing to be stuck
        if _loop_responds(self._loop, LIVENESS_TIMEOUT_SECONDS):
            return True, "event loop responsive"
        return False, f"event loop did not respond within {LIVENESS_TIMEOUT_SECONDS:.0f}s"

    def ready(self) -> tuple[bool, str]:
        return self._readiness()

    def start(self) -> None:
        if not self.port:
            return
        probes = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, *exposition())
                elif path in ("/healthz", "/livez"):
                    self._probe(probes.alive())
                elif path == "/readyz":
                    self._probe(probes.ready())
                else:
                    self._answer(404, b"not found: try /metrics, /healthz or /readyz\n")

            def _probe(self, result: tuple[bool, str]) -> None:
                ok, why = result
                self._answer(200 if ok else 503, f"{'ok' if ok else 'not ok'}: {why}\n".encode())

            def _answer(
                self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Probes every few seconds would drown the agent's own log."""

        self._server = ThreadingHTTPServer((self.address, self.port), Handler)
        self._server.daemon_threads = True
        self._wake = socket.socketpair()
        self._thread = threading.Thread(
            target=_serve, args=(self._server, self._wake[0]), name="reef-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        assert self._wake is not None
        assert self._thread is not None
        self._wake[1].send(b"x")
        self._thread.join()
        self._server.server_close()
        for end in self._wake:
            end.close()
        self._server = None


def _serve(server: ThreadingHTTPServer, wake: socket.socket) -> None:
    """Answer requests until ``wake`` is readable, sleeping in select without a timeout.

    ``serve_forever`` polls every 0.5 s for its shutdown flag: two wake-ups a second of an
    otherwise idle agent, ≈ 0.25 % of a core on the benchmark machine (docs/benchmarks.md).
    """
    with selectors.DefaultSelector() as selector:
        selector.register(server, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj is wake:
                    return
                server.handle_request()  # the socket is readable: accepts without waiting
