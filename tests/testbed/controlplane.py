"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Like controller-runtime's envtest, but with the controller manager too, so
namespaces really get deleted, garbage collection works and DaemonSets make
Pods. There is no kubelet and no scheduler: Pods are objects that never run.

Everything listens on 127.0.0.1 on free ports, lives in one temporary
directory (certificates, etcd data, logs, kubeconfig) and is removed again
by `LocalControlPlane.stop`, which ends the processes by their PIDs.

Also a command, for demos and manual poking::

    python -m tests.testbed.controlplane up --dir /tmp/reef-bed

prints the admin kubeconfig's path on stdout once the bed is ready and keeps
it running until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.testbed.apiproxy import ApiProxy, NetnsNode
from tests.testbed.binaries import BIN_DIR
from tests.testbed.kubeconfig import write_client_cert_kubeconfig
from tests.testbed.netns import connect_in
from tests.testbed.pki import ControlPlanePKI, create_pki, issue_client_cert
from tests.testbed.processes import BedProcessError, ManagedProcess, wait_until_ready

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTEXT_NAME = "reef-testbed"
"""Name of the cluster, user and context in the bed's admin kubeconfig."""

DEFAULT_CONTROLLERS = ("*", "-node-lifecycle-controller", "-taint-eviction-controller")
"""All default controllers but the two that act on Node health.

No kubelet ever reports for the bed's Node objects; node lifecycle would
mark each NotReady after ~50 s, taint it, and taint eviction would delete
its Pods five minutes later — noise for tests about anything else.
"""


_WORKDIR_PREFIX = "reef-bed-"
_OWNER_FILE = "owner.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_orphaned_workdirs() -> None:
    """Delete temporary bed directories whose owning process is gone.

    A SIGKILLed test run cannot clean up after itself; its processes die
    with it (PR_SET_PDEATHSIG) but its directory stays. The next bed removes
    it. Only directories the bed made (prefix and owner file) are touched.
    """
    for directory in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((directory / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not _alive(owner):
            shutil.rmtree(directory, ignore_errors=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(
    port: int,
    path: str,
    context: ssl.SSLContext | None,
    timeout: float = 2.0,
    netns: str | None = None,
) -> tuple[int, bytes]:
    """One GET on loopback (of ``netns`` when given), never through a proxy; (0, b"") when
    nothing answers."""
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout, context=context
        )
    try:
        if netns is not None:
            raw = connect_in(netns, ("127.0.0.1", port), timeout)
            connection.sock = (
                raw if context is None else context.wrap_socket(raw, server_hostname="127.0.0.1")
            )
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        connection.close()


class LocalControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, as children of this process.

    Use as a context manager, or call `start` and `stop`. `workdir`, when
    given, must not exist yet or be empty: the bed owns it and removes it.

    With `node`, everything runs inside that namespace node instead (the real-node bed,
    tests/testbed/kubelet_nodes.py): the API server serves on the node bridge too, is the
    endpoint of the ``kubernetes`` Service (so pods reach it through kube-proxy), can talk
    to kubelets, and the host reaches it at 127.0.0.1 through a relay. `scheduler` adds
    kube-scheduler (only useful where kubelets run).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        bin_dir: Path = BIN_DIR,
        controllers: Sequence[str] = DEFAULT_CONTROLLERS,
        startup_timeout: float = 120.0,
        node: NetnsNode | None = None,
        scheduler: bool = False,
    ) -> None:
        if workdir is not None and workdir.exists() and any(workdir.iterdir()):
            raise FileExistsError(
                f"{workdir} is not empty; the control plane needs a directory of its own "
                "(it deletes it on stop)"
            )
        self._requested_workdir = workdir
        self._bin_dir = bin_dir
        self._controllers = list(controllers)
        self._startup_timeout = startup_timeout
        self._workdir: Path | None = None
        self._apiserver_port = 0
        self._processes: list[ManagedProcess] = []
        self._node = node
        self._scheduler = scheduler
        self._relay: ApiProxy | None = None
        self.startup_seconds: float | None = None
        """Seconds from `start` until the bed was ready."""

    # -- what a client needs -------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("the control plane is not running")
        return self._workdir

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (group system:masters), certificates embedded."""
        return self.workdir / "kubeconfig"

    @property
    def ca_cert(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._apiserver_port}"

    @property
    def node_server(self) -> str:
        """The API server's URL as seen from the node bridge (kubelets, kube-proxy)."""
        if self._node is None:
            raise RuntimeError("this control plane runs on the host's loopback only")
        return f"https://{self._node.underlay.ip}:{self._apiserver_port}"

    @property
    def pki_dir(self) -> Path:
        return self.workdir / "pki"

    def pids(self) -> dict[str, int]:
        """PID of each running process of the bed, by name."""
        return {p.name: p.pid for p in self._processes if p.returncode() is None}

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> LocalControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start all three processes and return once the API is usable."""
        if self._workdir is not None:
            raise RuntimeError("the control plane is already running")
        started = time.monotonic()
        if self._requested_workdir is None:
            sweep_orphaned_workdirs()
            self._workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
        else:
            self._requested_workdir.mkdir(parents=True, exist_ok=True)
            self._workdir = self._requested_workdir.resolve()
        (self._workdir / _OWNER_FILE).write_text(str(os.getpid()))
        # Registered before anything is started, so a test run that dies of
        # an exception outside pytest's teardown still stops the processes.
        atexit.register(self.stop)
        try:
            self._start_processes()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self, grace: float = 10.0) -> None:
        """Stop the processes (by PID, newest first) and delete the work directory."""
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        for process in reversed(self._processes):
            process.stop(grace)
        self._processes = []
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        atexit.unregister(self.stop)

    def wait_for_failure(self, poll_interval: float = 1.0) -> ManagedProcess:
        """Block until one of the processes exits; return it.

        Waits on the API server's exit, checking the others between waits.
        """
        while True:
            for process in self._processes:
                if process.returncode() is not None:
                    return process
            self._processes[1].wait_exit(poll_interval)

    # -- the processes -------------------------------------------------------

    def _binary(self, name: str) -> str:
        path = self._bin_dir / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing; build it with tests/testbed/build-binaries.sh all"
            )
        return str(path)

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        if self._node is not None:
            argv = self._node.argv(*argv)
        process = ManagedProcess(name, argv, self.workdir / "logs" / f"{name}.log")
        self._processes.append(process)
        process.start()
        return process

    def _start_processes(self) -> None:
        workdir = self.workdir
        (workdir / "logs").mkdir()
        node = self._node
        netns = node.netns if node is not None else None
        pki = create_pki(
            workdir / "pki",
            service_ip=KUBERNETES_SERVICE_IP,
            extra_ips=(str(node.underlay.ip),) if node is not None else (),
        )
        etcd_port, etcd_peer_port = free_port(), free_port()
        self._apiserver_port = free_port()
        kcm_port = free_port()
        write_client_cert_kubeconfig(
            self.kubeconfig,
            name=CONTEXT_NAME,
            server=self.server,
            ca_cert=pki.ca.cert,
            client_cert=pki.admin.cert,
            client_key=pki.admin.key,
        )
        kcm_kubeconfig = write_client_cert_kubeconfig(
            workdir / "controller-manager.kubeconfig",
            name="controller-manager",
            server=self.server,
            ca_cert=pki.ca.cert,
            client_cert=pki.controller_manager.cert,
            client_key=pki.controller_manager.key,
        )

        etcd = self._spawn("etcd", self._etcd_argv(workdir, etcd_port, etcd_peer_port))
        wait_until_ready(
            etcd,
            lambda: _get(etcd_port, "/health", None, netns=netns)[0] == 200,
            timeout=self._startup_timeout,
            what="etcd reported healthy",
        )
        apiserver = self._spawn("kube-apiserver", self._apiserver_argv(workdir, pki, etcd_port))
        if node is not None:
            # The host's 127.0.0.1:PORT reaches the API server inside the node (TLS untouched).
            self._relay = ApiProxy(self._apiserver_port, upstream=node).start()
            self._relay.attach_host()
        admin_tls = ssl.create_default_context(cafile=str(pki.ca.cert))
        admin_tls.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
        wait_until_ready(
            apiserver,
            lambda: _get(self._apiserver_port, "/readyz", admin_tls)[0] == 200,
            timeout=self._startup_timeout,
            what="kube-apiserver answered /readyz",
        )
        # Only now: the controller manager exits at once if the API server has
        # not yet bootstrapped the RBAC rules that let it read its config.
        kcm = self._spawn(
            "kube-controller-manager", self._kcm_argv(workdir, pki, kcm_kubeconfig, kcm_port)
        )
        # Its serving certificate is self-signed, made at start; only the
        # liveness of this loopback endpoint matters here.
        kcm_tls = ssl.create_default_context()
        kcm_tls.check_hostname = False
        kcm_tls.verify_mode = ssl.CERT_NONE
        wait_until_ready(
            kcm,
            lambda: _get(kcm_port, "/healthz", kcm_tls, netns=netns)[0] == 200,
            timeout=self._startup_timeout,
            what="kube-controller-manager answered /healthz",
        )
        # The controllers really work once the service-account controller has
        # made the default namespace's ServiceAccount: Pods can then be created.
        wait_until_ready(
            kcm,
            lambda: (
                _get(
                    self._apiserver_port,
                    "/api/v1/namespaces/default/serviceaccounts/default",
                    admin_tls,
                )[0]
                == 200
            ),
            timeout=self._startup_timeout,
            what="the controllers created ServiceAccount default/default",
        )
        if self._scheduler:
            scheduler_cert = issue_client_cert(
                workdir / "pki", pki.ca, "scheduler", common_name="system:kube-scheduler"
            )
            scheduler_kubeconfig = write_client_cert_kubeconfig(
                workdir / "scheduler.kubeconfig",
                name="scheduler",
                server=self.server,
                ca_cert=pki.ca.cert,
                client_cert=scheduler_cert.cert,
                client_key=scheduler_cert.key,
            )
            self._spawn(
                "kube-scheduler",
                [
                    self._binary("kube-scheduler"),
                    f"--kubeconfig={scheduler_kubeconfig}",
                    f"--authentication-kubeconfig={scheduler_kubeconfig}",
                    f"--authorization-kubeconfig={scheduler_kubeconfig}",
                    "--secure-port=0",
                    "--leader-elect=false",
                ],
            )

    def _etcd_argv(self, workdir: Path, port: int, peer_port: int) -> list[str]:
        client = f"http://127.0.0.1:{port}"
        peer = f"http://127.0.0.1:{peer_port}"
        return [
            self._binary("etcd"),
            "--name=bed",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=bed={peer}",
            "--initial-cluster-state=new",
            # The data is thrown away with the bed; fsync only costs time.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, workdir: Path, pki: ControlPlanePKI, etcd_port: int) -> list[str]:
        return [
            self._binary("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            *self._apiserver_network_flags(pki),
            f"--secure-port={self._apiserver_port}",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
        ]

    def _apiserver_network_flags(self, pki: ControlPlanePKI) -> list[str]:
        if self._node is None:
            return [
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # Nothing could reach 127.0.0.1 from "inside" the cluster anyway, and
                # Endpoints may not hold a loopback address: keep the reconciler off.
                "--endpoint-reconciler-type=none",
            ]
        kubelet_client = issue_client_cert(
            pki.ca.cert.parent,
            pki.ca,
            "apiserver-kubelet-client",
            common_name="kube-apiserver-kubelet-client",
            organization="system:masters",
        )
        return [
            # 0.0.0.0 of the control plane's own namespace: its loopback and the node bridge.
            "--bind-address=0.0.0.0",
            f"--advertise-address={self._node.underlay.ip}",
            # The `kubernetes` Service's endpoint is this address, kept by a lease.
            "--endpoint-reconciler-type=lease",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _kcm_argv(
        self, workdir: Path, pki: ControlPlanePKI, kubeconfig: Path, port: int
    ) -> list[str]:
        return [
            self._binary("kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'controller-manager-certs'}",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca.cert}",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            "--use-service-account-credentials=true",
            f"--controllers={','.join(self._controllers)}",
            # A single instance: acquiring a lease would only delay the start.
            "--leader-elect=false",
        ]


def _up(directory: Path | None) -> int:
    # SIGTERM takes the same path as Ctrl-C: an orderly stop in `finally`.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    bed = LocalControlPlane(directory)
    try:
        bed.start()
        print(bed.kubeconfig, flush=True)
        print(
            f"control plane ready in {bed.startup_seconds:.1f}s at {bed.server}; "
            f"pids {json.dumps(bed.pids())}; stop with SIGINT or SIGTERM",
            file=sys.stderr,
            flush=True,
        )
        failed = bed.wait_for_failure()
        print(
            f"{failed.name} exited unexpectedly; last lines of its log:\n{failed.log_tail()}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 0
    except BedProcessError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            bed.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.testbed.controlplane",
        description="A real Kubernetes control plane on loopback, for demos and manual poking.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the bed and keep it running until SIGINT/SIGTERM")
    up.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="directory for the bed's files (created; must be empty; deleted on stop). "
        "Default: a fresh temporary directory.",
    )
    args = parser.parse_args(argv)
    return _up(args.dir)


if __name__ == "__main__":
    sys.exit(main())
