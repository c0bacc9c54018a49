"""The agent's probe endpoints answer from their own thread and tell the truth."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reef.observability import http, metrics
from reef.observability.http import ProbeServer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def server() -> Iterator[ProbeServer]:
    probes = ProbeServer(_free_port(), "127.0.0.1")
    probes.start()
    yield probes
    probes.stop()


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_readiness_follows_the_agents_answer(
    server: ProbeServer, running_loop: asyncio.AbstractEventLoop
) -> None:
    state = {"ready": False}
    server.attach(
        running_loop,
        lambda: (state["ready"], "wg0 configured" if state["ready"] else "waiting for address"),
    )
    assert _get(server.port, "/readyz") == (503, "not ok: waiting for address\n")
    state["ready"] = True
    assert _get(server.port, "/readyz") == (200, "ok: wg0 configured\n")


def test_not_ready_before_the_agent_attaches(server: ProbeServer) -> None:
    assert _get(server.port, "/readyz")[0] == 503
    assert _get(server.port, "/healthz")[0] == 200


def test_liveness_fails_while_the_event_loop_is_blocked(
    server: ProbeServer, running_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough that a healthy loop on a loaded machine always answers in time (the
    # check before and after the block); the blocked loop makes it wait this long once.
    monkeypatch.setattr(http, "LIVENESS_TIMEOUT_SECONDS", 3.0)
    server.attach(running_loop, lambda: (True, "ok"))
    assert _get(server.port, "/healthz")[0] == 200
    release = threading.Event()
    # A blocking call on the loop, as a wedged agent would make; released by the test.
    running_loop.call_soon_threadsafe(release.wait, 30)
    try:
        code, body = _get(server.port, "/healthz")
    finally:
        release.set()
    assert code == 503
    assert "did not respond" in body
    assert _get(server.port, "/healthz")[0] == 200, "liveness did not recover with the loop"


def test_metrics_are_served_beside_the_probes(server: ProbeServer) -> None:
    metrics.AGENT_PEERS.set(3)
    code, body = _get(server.port, "/metrics")
    assert code == 200
    assert "reef_agent_peers 3.0" in body
    # The library's default collectors, registered although its package file is skipped.
    assert "process_cpu_seconds_total" in body
    assert "python_gc_objects_collected_total" in body
    assert _get(server.port, "/nothing")[0] == 404


def _switches(thread_id: int) -> int:
    """Times the thread went to sleep (Linux): a thread blocked in select stays put."""
    status = Path(f"/proc/self/task/{thread_id}/status").read_text()
    return next(
        int(line.split()[1])
        for line in status.splitlines()
        if line.startswith("voluntary_ctxt_switches:")
    )


def test_an_idle_server_does_not_wake_up(server: ProbeServer) -> None:
    # serve_forever's 0.5 s poll would wake it ~4 times in this window (issue 15: idle CPU)
    thread = next(t for t in threading.enumerate() if t.name == "reef-http")
    assert thread.native_id is not None
    before = _switches(thread.native_id)
    threading.Event().wait(2.0)  # a window in which nothing may happen, not a wait for an event
    assert _switches(thread.native_id) - before <= 1
    assert _get(server.port, "/readyz")[0] == 503  # and it still answers
