"""Real Kubernetes nodes on one machine: kubelet + containerd + kube-proxy per namespace.

The chart's pods run here the way they run on a user's cluster: the operator Deployment,
the hostNetwork agent DaemonSet, the ``helm test`` Pod — scheduled by kube-scheduler,
started by containerd and runc, reaching the API server through the ``kubernetes``
ClusterIP that kube-proxy programs.

Layout (one random token per run, so runs never collide)::

    hub netns: bridge br0 (198.18.0.0/24)
      ├─ cp      control plane: etcd, kube-apiserver, controller manager, scheduler
      ├─ node-1  containerd, kubelet, kube-proxy; pods 10.244.1.0/24
      └─ ...

The host reaches the API server at 127.0.0.1 through a relay; nothing on the bridge can
reach the host's own listeners. Nodes have no default route: only on-link routes for the
service range and routes to the other nodes' pod ranges.

Each node is a network namespace plus a mount + UTS namespace made by
``unshare --propagation slave`` around containerd, which the kubelet and kube-proxy then
join (``nsenter -t <containerd>``): projected service-account tokens and pod network
namespaces must be visible to the kubelet and containerd alike. Why each unusual setting
is there: docs/testbed.md, "Real nodes".

Teardown is by PID: kubelets and kube-proxies, then every process in the nodes' own
cgroup roots (the containers), the containerd shims of our containerds, containerd,
then the cgroup directories, the namespaces and the state directory.

Also a command::

    python -m tests.testbed.kubelet_nodes up --nodes 3 [--dir DIR]

prints the admin kubeconfig's path once every node is Ready, and runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.testbed import node_configs as configs
from tests.testbed.binaries import BIN_DIR
from tests.testbed.controlplane import SERVICE_CLUSTER_IP_RANGE, LocalControlPlane
from tests.testbed.image import IMAGE, build_image
from tests.testbed.kubeconfig import write_client_cert_kubeconfig
from tests.testbed.netns import Lab, Node, netns_nodes
from tests.testbed.oci import PAUSE_IMAGE, image_archive, import_archive, pause_archive
from tests.testbed.pki import KeyPair, issue_client_cert
from tests.testbed.processes import ManagedProcess, wait_until_ready

CGROUP_V1_ROOT = Path("/sys/fs/cgroup")
_HOST_DIRS = (
    "/var/lib/cni",
    "/var/lib/reef",
    "/var/run/wireguard",
    "/run/netns",
    "/run/containerd",
)
_STOP_GRACE = 10.0


@dataclass
class KubeletNode:
    """One real node: its namespace node, its layout, its three processes."""

    netns_node: Node
    layout: configs.NodeLayout
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.layout.name

    def pids(self) -> set[int]:
        """Every process that makes up this node: its daemons, shims and containers."""
        daemons = {p.pid for p in self.processes if p.returncode() is None}
        return (
            daemons
            | _shim_pids(self.layout.containerd_socket)
            | _cgroup_pids(self.layout.cgroup_root)
        )

    def memory_mib(self) -> float:
        """Resident memory of :meth:`pids`, in MiB (shared pages counted once per process)."""
        total_kib = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
        return total_kib / 1024

    def run(self, *cmd: str, check: bool = True, timeout: float = 60.0) -> str:
        """``cmd`` in the node's network namespace (as a hostNetwork pod sees it)."""
        return self.netns_node.run(*cmd, check=check, timeout=timeout).stdout


def _v1_hierarchies() -> list[Path]:
    """Every mounted cgroup v1 hierarchy (the unified one is left to the host)."""
    return sorted(
        path for path in CGROUP_V1_ROOT.iterdir() if path.is_dir() and path.name != "unified"
    )


def _create_cgroup_root(name: str) -> None:
    for hierarchy in _v1_hierarchies():
        directory = hierarchy / name.lstrip("/")
        directory.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            # A new cpuset has no CPUs and no memory nodes until given the parent's.
            for key in ("cpuset.cpus", "cpuset.mems"):
                (directory / key).write_text((hierarchy / key).read_text())


def _cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for hierarchy in _v1_hierarchies():
        root = hierarchy / name.lstrip("/")
        if not root.is_dir():
            continue
        for procs in root.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def _remove_cgroup_root(name: str) -> None:
    for hierarchy in _v1_hierarchies():
        root = hierarchy / name.lstrip("/")
        if not root.is_dir():
            continue
        for directory in sorted(
            (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def _shim_pids(containerd_socket: Path) -> set[int]:
    """containerd-shim processes that serve *our* containerd (found by its socket path)."""
    marker = str(containerd_socket).encode()
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and marker in cmdline:
            pids.add(int(entry.name))
    return pids


def _kill_and_reap(pids: set[int]) -> None:
    """SIGKILL each PID and wait (on its pidfd) until it is gone."""
    fds: list[int] = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            continue
    deadline = time.monotonic() + _STOP_GRACE
    for fd in fds:
        with contextlib.suppress(OSError):
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        os.close(fd)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(-1, os.WNOHANG)


class KubeletCluster:
    """A control plane and ``nodes`` real kubelet nodes; a context manager."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        spare: int = 0,
        workdir: Path | None = None,
        image: str = IMAGE,
        bin_dir: Path = BIN_DIR,
    ) -> None:
        if not 1 <= nodes <= 200:
            raise ValueError("between 1 and 200 nodes")
        self.node_count = nodes
        self.spare_count = spare
        self._archives: tuple[Path, ...] = ()
        self.spares: dict[str, KubeletNode] = {}
        """Nodes wired into the bridge and the routes but not started: see `join`."""
        self.image = image
        self._bin_dir = bin_dir
        self._requested_workdir = workdir
        self._stack = ExitStack()
        self._lab: Lab | None = None
        self.control_plane: LocalControlPlane | None = None
        self.nodes: dict[str, KubeletNode] = {}
        self.workdir: Path | None = None
        self.timings: dict[str, float] = {}
        """Seconds each phase of `start` took."""

    # -- what a client needs -------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        assert self.control_plane is not None, "the cluster is not running"
        return self.control_plane.kubeconfig

    @property
    def server(self) -> str:
        assert self.control_plane is not None, "the cluster is not running"
        return self.control_plane.server

    def __getitem__(self, name: str) -> KubeletNode:
        return self.nodes[name]

    def __iter__(self) -> Iterator[KubeletNode]:
        return iter(self.nodes.values())

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> KubeletCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _phase(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 2)

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        began = time.monotonic()
        if self._requested_workdir is not None:
            self._requested_workdir.mkdir(parents=True, exist_ok=True)
            self.workdir = self._requested_workdir.resolve()
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="reef-nodes-"))
        total = self.node_count + self.spare_count
        names = [f"node-{i}" for i in range(1, total + 1)]
        started = time.monotonic()
        # Always built: podman's layer cache makes an unchanged tree cost seconds, and a
        # stale image would run yesterday's code on the nodes.
        build_image(self.image)
        archives = self.workdir / "images"
        archives.mkdir()
        reef_archive = image_archive(self.image, archives / "reef.oci.tar")
        pause = pause_archive()
        self._archives = (pause, reef_archive)
        self._phase("images", started)

        started = time.monotonic()
        self._lab = self._stack.enter_context(netns_nodes(["cp", *names]))
        self.control_plane = LocalControlPlane(
            self.workdir / "control-plane",
            bin_dir=self._bin_dir,
            controllers=("*",),
            node=self._lab["cp"],
            scheduler=True,
        )
        self.control_plane.start()
        self._phase("control plane", started)

        started = time.monotonic()
        for directory in _HOST_DIRS:
            Path(directory).mkdir(parents=True, exist_ok=True)
        for index, name in enumerate(names, start=1):
            netns_node = self._lab[name]
            layout = configs.NodeLayout(
                name=name,
                state=self.workdir / name,
                address=str(netns_node.underlay.ip),
                pod_cidr=f"10.244.{index}.0/24",
                cgroup_root=f"/reef-{self._lab.token}-{name}",
            )
            node = KubeletNode(netns_node, layout)
            self._prepare(node)
            if index > self.node_count:
                self.spares[name] = node
                continue
            self.nodes[name] = node
            self._start_containerd(node)
        self._phase("containerd", started)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            imports = [
                pool.submit(import_archive, node.layout.containerd_socket, archive)
                for node in self
                for archive in self._archives
            ]
            for done in imports:
                done.result()
        self._phase("image import", started)

        started = time.monotonic()
        for node in self:
            self._start_kubelet(node)
        self._wait_nodes_ready(list(self))
        self._phase("nodes ready", started)
        self.timings["total"] = round(time.monotonic() - began, 2)

    def join(self) -> KubeletNode:
        """Start the next spare node (containerd, images, kubelet); returns it once Ready."""
        if not self.spares:
            raise RuntimeError("no spare node left; make the cluster with spare=N")
        name = next(iter(self.spares))
        node = self.spares.pop(name)
        self.nodes[name] = node
        self._start_containerd(node)
        for archive in self._archives:
            import_archive(node.layout.containerd_socket, archive)
        self._start_kubelet(node)
        self._wait_nodes_ready([node])
        return node

    def stop(self) -> None:
        for node in self.nodes.values():
            for process in reversed(node.processes[1:]):  # kube-proxy, kubelet
                process.stop(_STOP_GRACE)
        for node in self.nodes.values():
            _kill_and_reap(_cgroup_pids(node.layout.cgroup_root))
            _kill_and_reap(_shim_pids(node.layout.containerd_socket))
            if node.processes:
                node.processes[0].stop(_STOP_GRACE)  # containerd
            _remove_cgroup_root(node.layout.cgroup_root)
        for node in self.spares.values():
            _remove_cgroup_root(node.layout.cgroup_root)
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        self._stack.close()  # the namespaces (and what still runs in them)
        self.nodes = {}
        self.spares = {}
        self._lab = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # -- one node ------------------------------------------------------------------------

    def _prepare(self, node: KubeletNode) -> None:
        assert self.control_plane is not None
        assert self._lab is not None
        layout = node.layout
        for directory in (
            layout.kubelet_dir,
            layout.cni_conf_dir,
            layout.cni_state_dir,
            layout.reef_keys_dir,
            layout.wireguard_run_dir,
            layout.pod_logs_dir,
            layout.state / "logs",
        ):
            directory.mkdir(parents=True, exist_ok=True)
        layout.reef_keys_dir.chmod(0o700)
        pki = self.control_plane.pki_dir
        ca_cert = pki / "ca.crt"
        kubelet_cert = issue_client_cert(
            layout.state,
            _ca_pair(pki),
            "kubelet",
            common_name=f"system:node:{layout.name}",
            organization="system:nodes",
        )
        proxy_cert = issue_client_cert(
            layout.state, _ca_pair(pki), "kube-proxy", common_name="system:kube-proxy"
        )
        server = self.control_plane.node_server
        for name, cert in (("kubelet", kubelet_cert), ("kube-proxy", proxy_cert)):
            write_client_cert_kubeconfig(
                layout.state / f"{name}.kubeconfig",
                name=name,
                server=server,
                ca_cert=ca_cert,
                client_cert=cert.cert,
                client_key=cert.key,
            )
        resolv = layout.state / "resolv.conf"
        resolv.write_text("# the bed has no DNS server\noptions ndots:1\n")
        (layout.state / "containerd.toml").write_text(
            configs.containerd_config(layout, PAUSE_IMAGE)
        )
        (layout.cni_conf_dir / "10-bed.conflist").write_text(configs.cni_conflist(layout))
        (layout.state / "kubelet.yaml").write_text(configs.kubelet_config(layout, ca_cert, resolv))
        (layout.state / "kube-proxy.yaml").write_text(
            configs.kube_proxy_config(layout, layout.state / "kube-proxy.kubeconfig")
        )
        _create_cgroup_root(layout.cgroup_root)
        run = node.netns_node.run
        run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # On-link routes only: the service range (kube-proxy DNATs it to the API server)
        # and every other node's pod range through that node. No default route.
        run("ip", "route", "add", SERVICE_CLUSTER_IP_RANGE, "dev", "eth0")
        for other_index in range(1, self.node_count + self.spare_count + 1):
            other = self._lab[f"node-{other_index}"]
            if other.name != layout.name:
                run(
                    "ip",
                    "route",
                    "add",
                    f"10.244.{other_index}.0/24",
                    "via",
                    str(other.underlay.ip),
                )

    def _spawn(self, node: KubeletNode, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, node.layout.state / "logs" / f"{name}.log")
        node.processes.append(process)
        process.start()
        return process

    def _start_containerd(self, node: KubeletNode) -> None:
        layout = node.layout
        script = configs.mount_setup_script(layout)
        config = layout.state / "containerd.toml"
        argv = [
            "nsenter",
            f"--net=/run/netns/{node.netns_node.netns}",
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "slave",
            "sh",
            "-c",
            f'{script}\nexec containerd --config "$1"',
            "containerd-in-node",
            str(config),
        ]
        process = self._spawn(node, "containerd", argv)
        wait_until_ready(
            process,
            layout.containerd_socket.exists,
            timeout=60,
            what="containerd opened its socket",
        )

    def _in_node(self, node: KubeletNode, *argv: str) -> list[str]:
        """Join containerd's network, mount and UTS namespaces (not ``ip netns exec``,
        which would make yet another mount namespace)."""
        containerd_pid = node.processes[0].pid
        return ["nsenter", "-t", str(containerd_pid), "-m", "-u", "-n", *argv]

    def _start_kubelet(self, node: KubeletNode) -> None:
        layout = node.layout
        self._spawn(
            node,
            "kubelet",
            self._in_node(
                node,
                str(self._bin_dir / "kubelet"),
                f"--config={layout.state / 'kubelet.yaml'}",
                f"--kubeconfig={layout.state / 'kubelet.kubeconfig'}",
                f"--root-dir={layout.kubelet_dir}",
                f"--hostname-override={layout.name}",
                f"--node-ip={layout.address}",
                "--v=1",
            ),
        )
        self._spawn(
            node,
            "kube-proxy",
            self._in_node(
                node,
                str(self._bin_dir / "kube-proxy"),
                f"--config={layout.state / 'kube-proxy.yaml'}",
                "--v=1",
            ),
        )

    def _wait_nodes_ready(self, nodes: list[KubeletNode], timeout: float = 180.0) -> None:
        """These Nodes Ready (by watch, through kubectl wait)."""
        kubectl = str(self._bin_dir / "kubectl")
        deadline = time.monotonic() + timeout
        for node in nodes:
            # The Node object appears only once its kubelet registered: wait for that first.
            kubelet = node.processes[1]
            wait_until_ready(
                kubelet,
                functools.partial(_node_exists, kubectl, self.kubeconfig, node.name),
                timeout=max(1.0, deadline - time.monotonic()),
                what=f"kubelet registered Node {node.name}",
                poll_interval=0.5,
            )
        result = subprocess.run(
            [
                kubectl,
                f"--kubeconfig={self.kubeconfig}",
                "wait",
                "--for=condition=Ready",
                *(f"node/{node.name}" for node in nodes),
                f"--timeout={max(1, int(deadline - time.monotonic()))}s",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tails = "\n".join(
                f"--- {node.name} kubelet:\n{node.processes[1].log_tail(15)}" for node in nodes
            )
            raise RuntimeError(f"nodes not Ready: {result.stderr}\n{tails}")


def _node_exists(kubectl: str, kubeconfig: Path, name: str) -> bool:
    return (
        subprocess.run(
            [kubectl, f"--kubeconfig={kubeconfig}", "get", "node", name, "-o", "name"],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


def _ca_pair(pki: Path) -> KeyPair:
    return KeyPair(cert=pki / "ca.crt", key=pki / "ca.key")


def _up(nodes: int, directory: Path | None) -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cluster = KubeletCluster(nodes, workdir=directory)
    try:
        cluster.start()
        print(cluster.kubeconfig, flush=True)
        print(f"{nodes} nodes ready; phases (s): {cluster.timings}", file=sys.stderr, flush=True)
        assert cluster.control_plane is not None
        failed = cluster.control_plane.wait_for_failure()
        print(f"{failed.name} exited:\n{failed.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the bed and keep it running until Ctrl-C")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--dir", type=Path, default=None, help="state directory (deleted on stop)")
    arguments = parser.parse_args(argv)
    return _up(arguments.nodes, arguments.dir)


if __name__ == "__main__":
    sys.exit(main())
