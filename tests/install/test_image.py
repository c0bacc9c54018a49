"""The container image, built with podman from the repository's Dockerfile, and run.

A cold build (base image by debootstrap, then the Dockerfile) takes about two minutes
here; a warm one seconds. Marked ``image``; skipped where podman or debootstrap are
missing.

The last test runs the image's agent as the DaemonSet does (root, NET_ADMIN only,
/dev/net/tun, read-only root filesystem, host directories for keys and wireguard-go's
UAPI sockets) with the network namespace of a node, next to a natively run agent on a
second node, against the real operator; the two must form a working tunnel.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import pytest

import reef
from tests.agent.bed import agent_bed
from tests.support.mesh import Body, MeshApi, addresses, condition, wait_for_agents
from tests.support.operator_process import OperatorProcess
from tests.testbed.clients import KubeTarget
from tests.testbed.image import IMAGE, RUN_PREFIX, build_image, missing_programs, run_in_image
from tests.testbed.netns import Node, netns_nodes

MESH_CIDR = "100.64.0.0/24"
CONTAINER_KUBECONFIG = "/etc/reef/kubeconfig"
CONTAINER_KEY_DIR = "/var/lib/reef"
"""The chart's default agent.keyDir."""
CONTAINER_WIREGUARD_DIR = "/var/run/wireguard"
"""Where the userspace backend (reef.dataplane.userspace.SOCKET_DIR) keeps UAPI sockets."""

pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(
        bool(missing_programs()), reason=f"image tools missing: {missing_programs()}"
    ),
]


@pytest.fixture(scope="module")
def image() -> str:
    build_image(IMAGE)
    return IMAGE


def test_image_runs_reef_version_and_help(image: str) -> None:
    version = run_in_image("version", image=image)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == reef.__version__

    usage = run_in_image("--help", image=image)
    assert usage.returncode == 0, usage.stderr
    for command in ("operator", "agent", "version"):
        assert command in usage.stdout


def test_image_runs_as_a_non_root_user_by_default(image: str) -> None:
    result = run_in_image(
        "-c",
        "import os; print(os.getuid(), os.getgid())",
        image=image,
        options=["--entrypoint", "python3"],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["65532", "65532"]


def test_image_holds_the_wireguard_tools_and_every_entry_points_imports(image: str) -> None:
    script = (
        "wg --version && wireguard-go --version && ip -V && "
        "python3 -c 'import reef.operator.main, kopf, pyroute2, prometheus_client'"
    )
    result = run_in_image("-c", script, image=image, options=["--entrypoint", "/bin/sh"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wireguard-tools" in result.stdout
    assert "wireguard-go" in result.stdout


RFC7748_PRIVATE = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
RFC7748_PUBLIC = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
"""RFC 7748 section 6.1 (Alice's X25519 key pair), base64 as WireGuard writes keys."""


def test_image_derives_a_public_key_in_process_without_wg_on_path(image: str) -> None:
    """No derivation needs the `wg` binary, and the image's Python reaches OpenSSL's
    X25519 through its ssl module (reef.dataplane.x25519), not the 9 MiB fall-back."""
    script = (
        "import shutil; from reef.dataplane.keys import Key; "
        "from reef.dataplane.x25519 import openssl_deriver; "
        "assert shutil.which('wg') is None, shutil.which('wg'); "
        "assert openssl_deriver() is not None, 'no libcrypto X25519 through _ssl'; "
        f"print(Key.from_base64({RFC7748_PRIVATE!r}).public_key())"
    )
    result = run_in_image(
        "-c",
        script,
        image=image,
        options=["--entrypoint", "/opt/reef/bin/python", "--env", "PATH=/opt/reef/bin"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == RFC7748_PUBLIC


@pytest.mark.netns
def test_image_creates_a_userspace_wireguard_interface_inside_a_node_namespace(
    image: str,
) -> None:
    """What the agent's userspace backend needs from the image and the DaemonSet's rights:
    NET_ADMIN and /dev/net/tun only, as root, in the node's network namespace."""
    with netns_nodes(["a"]) as lab:
        node = lab["a"]
        script = (
            f"mkdir -p /var/run/wireguard && wireguard-go {node.wg_ifname} && "
            f"wg set {node.wg_ifname} listen-port 51820 private-key /dev/stdin && "
            f"ip link set {node.wg_ifname} up && wg show {node.wg_ifname} listen-port"
        )
        key = run_in_image("genkey", image=image, options=["--entrypoint", "wg"])
        assert key.returncode == 0, key.stderr
        result = run_in_image(
            "-c",
            script,
            image=image,
            options=[
                "--network",
                f"ns:/run/netns/{node.netns}",
                "--user",
                "0",
                "--cap-drop",
                "ALL",
                "--cap-add",
                "NET_ADMIN",
                "--device",
                "/dev/net/tun",
                "--tmpfs",
                "/var/run/wireguard",
                "-i",
                "--entrypoint",
                "/bin/sh",
            ],
            input=key.stdout,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().splitlines()[-1] == "51820"


class ContainerAgent:
    """``reef agent`` from the image inside a node's network namespace, as the DaemonSet runs it.

    ``podman run`` stays in the foreground as our child, its output going to a log file,
    so an agent that dies is seen at once; the container is stopped by the name given
    here. The node's key directory and its ``/var/run/wireguard`` are host directories
    of its own (the DaemonSet's hostPath volumes), so the host sees the key and the
    UAPI socket the container's agent made.
    """

    def __init__(self, image: str, node: Node, env: dict[str, str], workdir: Path) -> None:
        self.node = node
        self.name = f"reef-test-agent-{secrets.token_hex(4)}"
        self.key_dir = workdir / "keys"
        self.wireguard_dir = workdir / "wireguard"
        self.log_path = workdir / "agent.log"
        for directory in (self.key_dir, self.wireguard_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        in_container = {"REEF_KUBECONFIG": CONTAINER_KUBECONFIG, "REEF_KEY_DIR": CONTAINER_KEY_DIR}
        self._argv = [
            *RUN_PREFIX,
            "--name",
            self.name,
            "--network",
            f"ns:/run/netns/{node.netns}",
            # the agent DaemonSet's securityContext
            "--user",
            "0",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "NET_ADMIN",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "--device",
            "/dev/net/tun",
            # its volumes
            "--volume",
            f"{self.key_dir}:{CONTAINER_KEY_DIR}",
            "--volume",
            f"{self.wireguard_dir}:{CONTAINER_WIREGUARD_DIR}",
            "--volume",
            f"{env['REEF_KUBECONFIG']}:{CONTAINER_KUBECONFIG}:ro",
            # the node's settings, with the paths as the container sees them
            *(f"--env={key}={value}" for key, value in env.items() if key not in in_container),
            *(f"--env={key}={value}" for key, value in in_container.items()),
            image,
            "agent",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ContainerAgent:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_running(self) -> None:
        """Fail if the container is no longer running (the caller adds its log)."""
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"agent container {self.name} exited with {code}")

    def exec(self, *command: str) -> str:
        """``podman exec``: run ``command`` in the running container; its stdout."""
        result = subprocess.run(
            ["podman", "exec", self.name, *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def stop(self, timeout: int = 15) -> int | None:
        """SIGTERM the agent (``podman stop``), then its exit code; None if it never ran."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            subprocess.run(
                ["podman", "stop", "--time", str(timeout), self.name],
                capture_output=True,
                timeout=timeout + 60,
                check=False,
            )
            try:
                self.process.wait(timeout + 30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # --rm removes it; this is for a `podman run` that was itself killed.
        subprocess.run(
            ["podman", "rm", "--force", "--ignore", self.name],
            capture_output=True,
            timeout=60,
            check=False,
        )
        return self.process.returncode

    def __enter__(self) -> ContainerAgent:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def ready_with_one_peer(
    names: list[str], container: ContainerAgent
) -> Callable[[dict[str, Body]], bool]:
    """Every named MeshAgent has an address and is Ready with one peer; fails at the next
    event once the container has died."""

    def done(objects: dict[str, Body]) -> bool:
        container.check_running()
        for name in names:
            body = objects.get(name)
            if body is None or not addresses(body):
                return False
            ready = condition(body, "Ready")
            peers = ((body.get("status") or {}).get("dataplane") or {}).get("peers") or {}
            if ready is None or ready["status"] != "True" or peers.get("total") != 1:
                return False
        return True

    return done


@pytest.fixture
def served_network(mesh: MeshApi, operators: Callable[..., OperatorProcess], network: str) -> str:
    """A MeshNetwork with the real operator running for it."""
    operators().start()
    mesh.create_network(network, [MESH_CIDR], reuseCooldown="0s")
    return network


@pytest.mark.netns
def test_the_images_agent_forms_a_tunnel_with_a_native_agent_and_both_ping(
    image: str, kube_target: KubeTarget, mesh: MeshApi, served_network: str, tmp_path: Path
) -> None:
    network = served_network
    with agent_bed(
        kube_target.kubeconfig, kube_target.server, network, tmp_path, ["a", "b"]
    ) as bed:
        node_a = bed.node("a")
        # 127.0.0.1:<API port> inside node a, which the container shares, reaches the API.
        bed.proxy.attach(node_a)
        env = bed.agent_env(node_a)
        container_env = {key: value for key, value in env.items() if key.startswith("REEF_")}
        with ContainerAgent(image, node_a, container_env, tmp_path / "container-a") as container:
            bed.start("b")
            a_name, b_name = bed.node_name("a"), bed.node_name("b")
            try:
                objects = wait_for_agents(
                    mesh, network, ready_with_one_peer([a_name, b_name], container), timeout=180
                )
            except AssertionError as error:
                raise AssertionError(
                    f"{error}\ncontainer's agent log:\n{container.tail()}"
                ) from error

            a_body, b_body = objects[a_name], objects[b_name]
            assert a_body["status"]["dataplane"]["backend"] == "userspace"
            assert "wireguard-go" in a_body["status"]["dataplane"]["backendReason"]
            a_address, b_address = addresses(a_body)[0], addresses(b_body)[0]
            bed.ping("a", b_address)
            bed.ping("b", a_address)

            # The container's wireguard-go answers on the socket in node a's own host
            # directory, with the key the agent kept there and published.
            ifname = node_a.wg_ifname
            assert (container.wireguard_dir / f"{ifname}.sock").exists()
            public_key = container.exec("wg", "show", ifname, "public-key").strip()
            assert a_body["spec"]["publicKey"] == public_key
            assert container.exec("wg", "show", ifname, "peers").split() == [bed.public_key("b")]
            key_file = container.key_dir / f"{network}.key"
            assert key_file.stat().st_mode & 0o777 == 0o600
            assert a_body["spec"]["endpoint"] == f"{node_a.underlay.ip}:51820"

            # PID 1 of the container is the agent: SIGTERM ends it cleanly.
            assert container.stop() == 0, container.tail()
