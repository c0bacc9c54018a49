"""The container image, built with podman from the repository's Dockerfile, and run.

A cold build (base image by debootstrap, then the Dockerfile) takes about two minutes
here; a warm one seconds. Marked ``image``; skipped where podman or debootstrap are
missing.
"""

from __future__ import annotations

import pytest

import reef
from tests.testbed.image import IMAGE, build_image, missing_programs, run_in_image
from tests.testbed.netns import netns_nodes

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
