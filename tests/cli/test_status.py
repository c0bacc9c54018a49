"""``reef status`` and ``reef graph`` on a live mesh, and ``kubectl reef`` as a kubectl plugin."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.agent.bed import AgentBed
from tests.cli.conftest import Run, cli_env
from tests.support.mesh import Body, MeshApi, condition, members_ready, wait_for_agents
from tests.testbed.binaries import binary
from tests.testbed.clients import KubeTarget


def kubectl_plugin(directory: Path) -> Path:
    """A ``kubectl-reef`` as pip installs it: a script running ``reef.cli.main:main``."""
    directory.mkdir(parents=True, exist_ok=True)
    plugin = directory / "kubectl-reef"
    plugin.write_text(
        f"#!{sys.executable}\nimport sys\nfrom reef.cli.main import main\nsys.exit(main())\n"
    )
    plugin.chmod(0o755)
    return plugin


def reports_unreachable(reporters: list[str], target: str) -> Callable[[dict[str, Body]], bool]:
    def done(objects: dict[str, Body]) -> bool:
        for name in reporters:
            peers = condition(objects.get(name) or {}, "PeersHealthy")
            if peers is None or peers["status"] != "False" or target not in peers["message"]:
                return False
        return True

    return done


def test_status_is_zero_on_a_healthy_mesh_and_names_the_member_that_died(
    *,
    bed: Callable[..., AgentBed],
    mesh: MeshApi,
    network: str,
    cli: Run,
    kube_target: KubeTarget,
    tmp_path: Path,
) -> None:
    nodes = ["a", "b", "c"]
    agents = bed(nodes)
    for name in nodes:
        agents.start(name)
    # Ready comes before the first handshakes: a member whose peers have not yet
    # shaken hands reports them unhealthy, and `reef status` is a snapshot of that.
    full = {agents.node_name(n): 2 for n in nodes}
    wait_for_agents(mesh, network, members_ready(full, healthy_by_name=full), 90)

    # Through the real kubectl's plugin lookup: `kubectl reef` runs kubectl-reef from PATH.
    plugins = tmp_path / "plugins"
    kubectl_plugin(plugins)
    listed = subprocess.run(
        [str(binary("kubectl")), "plugin", "list"],
        capture_output=True,
        text=True,
        env=cli_env(PATH=f"{plugins}:/usr/bin:/bin"),
        check=False,
    )
    assert str(plugins / "kubectl-reef") in listed.stdout, listed.stdout + listed.stderr
    healthy = subprocess.run(
        [
            str(binary("kubectl")),
            "reef",
            "status",
            "--kubeconfig",
            str(kube_target.kubeconfig),
            "--network",
            network,
        ],
        capture_output=True,
        text=True,
        env=cli_env(PATH=f"{plugins}:/usr/bin:/bin"),
        check=False,
    )
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "mesh: healthy" in healthy.stdout
    for name in nodes:
        assert agents.node_name(name) in healthy.stdout

    report = json.loads(cli("status", "--network", network, "-o", "json").stdout)
    assert report["healthy"] is True
    assert {m["name"] for m in report["members"]} == {agents.node_name(n) for n in nodes}
    assert {m["health"] for m in report["members"]} == {"Healthy"}
    assert report["networks"][0]["capacity"] == 254

    graph = cli("graph", "--network", network).stdout
    svg = subprocess.run(["dot", "-Tsvg"], input=graph, capture_output=True, text=True, check=False)
    assert svg.returncode == 0, svg.stderr + graph
    assert graph.count("color=forestgreen") == 3

    # c dies without a word, and its interface goes with it.
    dead = agents.node_name("c")
    agents.agents["c"].stop(signal.SIGKILL)
    agents.node("c").run("ip", "link", "del", agents.node("c").wg_ifname)
    others = [agents.node_name(n) for n in ("a", "b")]
    # No handshake for 180 s is what "cannot reach" means (WireGuard re-keys every 120 s).
    wait_for_agents(mesh, network, reports_unreachable(others, dead), timeout=240)

    unhealthy = cli("status", "--network", network, check=False)
    assert unhealthy.returncode == 1, unhealthy.stdout + unhealthy.stderr
    assert f"member {dead}: no recent handshake with it from: {', '.join(sorted(others))}" in (
        unhealthy.stdout
    )
    for name in others:
        assert f"{name} -> {dead}" in unhealthy.stdout
    report = json.loads(cli("status", "--network", network, "-o", "json", check=False).stdout)
    assert report["healthy"] is False
    assert {m["name"]: m["health"] for m in report["members"]}[dead] == "Unhealthy"
    broken = cli("graph", "--network", network).stdout
    assert broken.count("color=red3") == 2
