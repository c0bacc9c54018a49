"""The agent's HTTPS client for the API server, on the standard library alone.

The agent's API traffic is a few JSON calls and three watches. The official client's
``ApiClient`` — which the generic calls and its ``Watch`` need — imports pydantic's
machinery, dateutil, urllib3 and a multiprocessing thread pool: ≈ 140 ms of a node's
start and ≈ 8 MiB of its memory (docs/benchmarks.md). This client does what the agent
uses: one keep-alive connection per thread, bearer tokens or client certificates,
JSON bodies, streamed responses for watches, and ``ApiException`` for any status that
is not 2xx, as the official client raises it. The operator and the CLI keep the official
client; so does an agent whose kubeconfig needs plugins (reef.kube.client decides).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from reef import __version__
from reef.kube.writes import ApiException

#: Sent with every call: the API server's audit log, its request metrics and the
#: ``manager`` of fields written without a fieldManager name the agent by it, where a
#: request with no User-Agent shows up as "unknown" (client-go sends one the same way).
USER_AGENT = f"reef-agent/{__version__} (python http.client)"

#: An ordinary call's socket timeout; watches pass their own (longer than the server's).
DEFAULT_TIMEOUT_SECONDS = 30.0

#: Re-read a token file this often: in-cluster service-account tokens rotate (the
#: kubelet rewrites the file well before expiry), as client-go's file source does.
TOKEN_REFRESH_SECONDS = 60.0

#: Errors of a keep-alive connection the server closed while it was idle: sent again
#: once on a fresh connection (the request never reached the server, or got no answer).
#: Over TLS, writing to a connection the server has reset is an SSLEOFError (seen at
#: 5000 members: every agent's first status write after the API server dropped its idle
#: connections failed and backed off).
_STALE_CONNECTION = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ssl.SSLEOFError,
)


class TokenFile:
    """``Bearer <token>`` from a file, read again every :data:`TOKEN_REFRESH_SECONDS`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._value = ""
        self._read_at = float("-inf")

    def __call__(self) -> str:
        now = time.monotonic()
        if now - self._read_at >= TOKEN_REFRESH_SECONDS:
            self._value = f"Bearer {self._path.read_text().strip()}"
            self._read_at = now
        return self._value


class Response:
    """What reef reads of a response: ``status``, ``reason``, ``headers``, ``data`` (the
    whole body, read once) and :meth:`stream` (a watch's bytes as they arrive); the
    same names as urllib3's response, which the official client returns."""

    def __init__(self, raw: http.client.HTTPResponse, connection: http.client.HTTPConnection):
        self.status = raw.status
        self.reason = raw.reason
        self.headers = dict(raw.getheaders())
        #: The connection: another thread may shut its socket down to end a watch.
        self.connection = connection
        self._raw = raw
        self._data: bytes | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self._raw.read()
        return self._data

    def read(self) -> bytes:
        return self.data

    def stream(self, amt: int = 65536) -> Iterator[bytes]:
        while chunk := self._raw.read1(amt):
            yield chunk

    def close(self) -> None:
        """Done with it; a body not read to its end makes the connection unusable."""
        complete = self._raw.isclosed()
        self._raw.close()
        if not complete:
            self.connection.close()


class HttpTransport:
    """Calls to one API server, each thread on its own keep-alive connection."""

    def __init__(
        self,
        server: str,
        context: ssl.SSLContext,
        authorization: Callable[[], str | None] | None = None,
    ) -> None:
        url = urllib.parse.urlsplit(server)
        if url.scheme != "https" or url.hostname is None:
            raise ValueError(f"API server {server!r}: only https:// is supported")
        self.host = server.rstrip("/")
        self._address = (url.hostname, url.port or 443)
        self._prefix = url.path.rstrip("/")
        self._context = context
        self._authorization = authorization
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPSConnection] = []

    def _connection(self) -> tuple[http.client.HTTPSConnection, bool]:
        """This thread's connection, and whether it was used before (may be stale)."""
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None:
            return connection, True
        if connection is None:
            host, port = self._address
            connection = http.client.HTTPSConnection(host, port, context=self._context)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection, False

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        stream: bool = False,
    ) -> Response:
        """One call; a status other than 2xx raises ApiException (the body read).

        The body is read before this returns, which frees the connection for the
        thread's next call; with ``stream`` (a watch) it is left to the caller, and the
        thread's next call finds the connection busy until :meth:`Response.close`.
        """
        url = self._prefix + path
        if query:
            url += "?" + urllib.parse.urlencode(
                {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
            )
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type
        if self._authorization is not None and (value := self._authorization()):
            headers["Authorization"] = value
        previous: Response | None = getattr(self._local, "streaming", None)
        if previous is not None:
            previous.close()  # a stream the caller left: not reusable unless read to its end
            self._local.streaming = None
        connection, reused = self._connection()
        try:
            raw = self._send(connection, method, url, body, headers=headers, timeout=timeout)
        except _STALE_CONNECTION:
            if not reused:
                raise
            connection.close()
            raw = self._send(connection, method, url, body, headers=headers, timeout=timeout)
        response = Response(raw, connection)
        if not 200 <= response.status <= 299:
            response.data  # noqa: B018 (read the body: it holds the API's Status, and frees the connection)
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        if stream:
            self._local.streaming = response
        else:
            response.data  # noqa: B018 (read now: the connection is free for the next call)
        return response

    @staticmethod
    def _send(
        connection: http.client.HTTPSConnection,
        method: str,
        url: str,
        body: bytes | None,
        *,
        headers: dict[str, str],
        timeout: float,
    ) -> http.client.HTTPResponse:
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        try:
            connection.request(method, url, body=body, headers=headers)
            return connection.getresponse()
        except BaseException:
            connection.close()  # half a request or response on it: never reused
            raise

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            sock = connection.sock
            if sock is not None:
                # Unblocks a thread still reading a watch on it (closing alone may not).
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            connection.close()


#: What the service-account admission mounts into every pod.
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _context(
    ca_file: str | None, verify: bool, cert: str | None, key: str | None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def connect(
    kubeconfig: Path | None, kube_context: str | None, environment: Mapping[str, str]
) -> HttpTransport | None:
    """A transport by in-cluster credentials (no kubeconfig) or a static kubeconfig;
    None when the kubeconfig needs the official client's loader (plugins and the like)."""
    from reef.kube.kubeconfig import configure_static  # only kubeconfig users need YAML

    if kubeconfig is None:
        host = environment.get("KUBERNETES_SERVICE_HOST")
        port = environment.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise OSError("no REEF_KUBECONFIG and no in-cluster service (KUBERNETES_SERVICE_*)")
        if ":" in host:
            host = f"[{host}]"
        context = _context(str(SERVICE_ACCOUNT / "ca.crt"), True, None, None)
        return HttpTransport(
            f"https://{host}:{port}", context, TokenFile(SERVICE_ACCOUNT / "token")
        )
    found = _Found()
    if not configure_static(found, kubeconfig, kube_context) or found.tls_server_name:
        return None
    context = _context(found.ssl_ca_cert, found.verify_ssl, found.cert_file, found.key_file)
    token = found.api_key.get("BearerToken")
    return HttpTransport(found.host, context, None if token is None else lambda: token)


class _Found:
    """What reef.kube.kubeconfig.configure_static fills in (the client's field names)."""

    def __init__(self) -> None:
        self.host = ""
        self.ssl_ca_cert: str | None = None
        self.verify_ssl = True
        self.cert_file: str | None = None
        self.key_file: str | None = None
        self.tls_server_name: str | None = None
        self.api_key: dict[str, str] = {}
