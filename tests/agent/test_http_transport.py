"""The agent's standard-library API client against a real API server: calls, errors as
the official client raises them, watches, and a keep-alive connection the server closed."""

from __future__ import annotations

import json
import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reef.kube.http import HttpTransport, TokenFile, connect
from reef.kube.listwatch import _lines
from reef.kube.writes import ApiException
from tests.testbed.clients import KubeTarget


@pytest.fixture
def transport(kube_target: KubeTarget) -> Iterator[HttpTransport]:
    found = connect(kube_target.kubeconfig, kube_target.context, os.environ)
    assert found is not None, "the bed's kubeconfig is static"
    try:
        yield found
    finally:
        found.close()


def _namespace(name: str) -> bytes:
    return json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    ).encode()


def test_calls_return_json_and_errors_raise_api_exception_with_the_status(
    transport: HttpTransport,
) -> None:
    listed = json.loads(transport.request("GET", "/api/v1/namespaces").data)
    assert "default" in {item["metadata"]["name"] for item in listed["items"]}
    with pytest.raises(ApiException) as missing:
        transport.request("GET", "/api/v1/namespaces/no-such-namespace")
    assert missing.value.status == 404
    assert json.loads(str(missing.value.body))["reason"] == "NotFound"
    created = json.loads(
        transport.request("POST", "/api/v1/namespaces", body=_namespace("reef-http")).data
    )
    assert created["metadata"]["name"] == "reef-http"
    with pytest.raises(ApiException) as conflict:
        transport.request("POST", "/api/v1/namespaces", body=_namespace("reef-http"))
    assert conflict.value.status == 409
    # Every call above ran on one keep-alive connection, the failures included.
    assert len(transport._connections) == 1
    transport.request("DELETE", "/api/v1/namespaces/reef-http")


def test_the_server_knows_the_agent_by_its_user_agent(transport: HttpTransport) -> None:
    # With no fieldManager given, the API server names the writer by its User-Agent (up
    # to the first "/"); a request without one is recorded as "unknown".
    created = json.loads(
        transport.request("POST", "/api/v1/namespaces", body=_namespace("reef-http-agent")).data
    )
    try:
        managers = {entry["manager"] for entry in created["metadata"]["managedFields"]}
        assert managers == {"reef-agent"}
    finally:
        transport.request("DELETE", "/api/v1/namespaces/reef-http-agent")


def test_a_watch_streams_events_until_the_server_ends_it(transport: HttpTransport) -> None:
    listed = json.loads(transport.request("GET", "/api/v1/namespaces").data)
    version = listed["metadata"]["resourceVersion"]
    seen: list[str] = []
    opened = threading.Event()

    def follow() -> None:
        response = transport.request(
            "GET",
            "/api/v1/namespaces",
            {"watch": True, "resourceVersion": version, "timeoutSeconds": 3},
            stream=True,
        )
        opened.set()
        for line in _lines(response.stream()):
            event = json.loads(line)
            seen.append(f"{event['type']} {event['object']['metadata']['name']}")
        response.close()

    watcher = threading.Thread(target=follow)
    watcher.start()
    assert opened.wait(10)
    transport.request("POST", "/api/v1/namespaces", body=_namespace("reef-watched"))
    watcher.join(30)  # the server ends the stream after timeoutSeconds
    assert not watcher.is_alive()
    assert "ADDED reef-watched" in seen
    transport.request("DELETE", "/api/v1/namespaces/reef-watched")


def test_a_connection_the_server_closed_is_replaced_once(transport: HttpTransport) -> None:
    transport.request("GET", "/version")
    (connection,) = transport._connections
    assert connection.sock is not None
    # What an idle timeout on the server side leaves: the peer is gone, the socket open.
    connection.sock.shutdown(2)
    assert json.loads(transport.request("GET", "/version").data)["major"]


def test_a_tls_eof_on_a_reused_connection_is_sent_again_once(
    transport: HttpTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What writing to a connection the API server reset looks like over TLS (it happened
    # to every agent at once at 5000 members); the real server answers the second send.
    transport.request("GET", "/version")
    send = HttpTransport._send
    failures: list[int] = []

    def reset_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
        return send(*args, **kwargs)

    monkeypatch.setattr(HttpTransport, "_send", staticmethod(reset_once))
    assert json.loads(transport.request("GET", "/version").data)["major"]
    assert failures == [1]


def test_a_token_file_is_read_again_after_its_refresh_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    path.write_text("one\n")
    now = [100.0]
    monkeypatch.setattr("reef.kube.http.time.monotonic", lambda: now[0])
    token = TokenFile(path)
    assert token() == "Bearer one"
    path.write_text("two\n")
    now[0] += 59
    assert token() == "Bearer one"
    now[0] += 2
    assert token() == "Bearer two"
