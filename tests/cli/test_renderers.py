"""The CLI's pure parts: the health report, the table, DOT and wg-quick renderers."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reef.agent.peers import plan_peers
from reef.api.records import read_mesh_agent, read_mesh_network
from reef.cli.graph import BROKEN_EDGE, HEALTHY_EDGE, render_dot
from reef.cli.join import write_private
from reef.cli.report import Health, OperatorReport, build_report, listed_names
from reef.cli.table import render_status
from reef.cli.wgquick import PRIVATE_KEY_PLACEHOLDER, render_wg_quick
from reef.dataplane import Key

REPO = Path(__file__).resolve().parents[2]
OPERATOR_OK = OperatorReport(Health.HEALTHY, "reef-system/reef-operator available")


def condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def member(
    name: str,
    address: str | None,
    *,
    network: str = "net",
    cannot_reach: tuple[str, ...] = (),
    node: str | None = None,
    endpoint: str = "",
    role: str = "Agent",
    labels: dict[str, str] | None = None,
    reported: bool = True,
    key: Key | None = None,
) -> dict[str, Any]:
    conditions = [condition("Allocated", "True", "Allocated")] if address else []
    if reported and address:
        peers_ok = not cannot_reach
        conditions += [
            condition("Configured", "True", "InterfaceConfigured"),
            condition(
                "PeersHealthy",
                "True" if peers_ok else "False",
                "HandshakesRecent" if peers_ok else "HandshakesMissing",
                ""
                if peers_ok
                else f"{len(cannot_reach)} of 2 peer(s) without a handshake in 180 s: "
                + ", ".join(cannot_reach),
            ),
            condition("Ready", "True" if peers_ok else "False", "Ready" if peers_ok else "X"),
        ]
    status: dict[str, Any] = {"conditions": conditions}
    if address:
        status["addresses"] = [address]
    if reported and address:
        status["dataplane"] = {"peers": {"total": 2, "healthy": 2 - len(cannot_reach)}}
    return {
        "metadata": {
            "name": name,
            "labels": labels or {},
            "creationTimestamp": f"2026-12-01T10:00:0{len(name) % 10}Z",
        },
        "spec": {
            "network": network,
            "nodeName": name if node is None else node,
            "publicKey": (key or Key.generate().public_key()).base64(),
            "endpoint": endpoint,
            "role": role,
        },
        "status": status,
    }


def network(name: str = "net", *, exhausted: bool = False, topology: str = "FullMesh") -> Any:
    return {
        "metadata": {"name": name},
        "spec": {"cidrs": ["100.64.0.0/24"], "topology": topology, "persistentKeepalive": 25},
        "status": {
            "capacity": 254,
            "allocated": 3,
            "reserved": 1,
            "conditions": [
                condition("Ready", "True", "Ready", "the ledger is readable and consistent"),
                condition("PoolExhausted", "True" if exhausted else "False", "x", "3 of 254"),
            ],
        },
    }


def test_peers_healthy_messages_give_the_names_they_list() -> None:
    message = "7 of 9 peer(s) without a handshake in 180 s: a, b, c, d, e and 2 more"
    assert listed_names(message) == ("a", "b", "c", "d", "e")
    assert listed_names("1 of 2 peer(s) without a handshake in 180 s: node-c") == ("node-c",)
    assert listed_names("all 2 peer(s) completed a handshake within 180 s") == ()


def test_a_mesh_of_ready_members_is_healthy() -> None:
    agents = [member(n, f"100.64.0.{i}") for i, n in enumerate("abc", 1)]
    report = build_report([network()], agents, OPERATOR_OK)
    assert report.healthy, report.problems
    assert {m.health for m in report.members} == {Health.HEALTHY}
    json.dumps(report.as_dict())


def test_a_dead_member_that_still_says_ready_is_named_by_its_peers() -> None:
    agents = [
        member("a", "100.64.0.1", cannot_reach=("c",)),
        member("b", "100.64.0.2", cannot_reach=("c",)),
        member("c", "100.64.0.3"),  # its last report, from before it died
    ]
    report = build_report([network()], agents, OPERATOR_OK)
    assert not report.healthy
    by_name = {m.name: m for m in report.members}
    assert by_name["c"].health is Health.UNHEALTHY
    assert by_name["c"].unreachable_from == ("a", "b")
    assert "a cannot reach c" in report.problems
    assert any(p.startswith("member c:") for p in report.problems)


def test_structured_unhealthy_peers_win_over_the_message() -> None:
    body = member("a", "100.64.0.1", cannot_reach=("x",))
    body["status"]["dataplane"]["unhealthyPeers"] = ["b"]
    report = build_report([network()], [body, member("b", "100.64.0.2")], OPERATOR_OK)
    assert {m.name: m.cannot_reach for m in report.members}["a"] == ("b",)


def test_exhausted_pool_unhealthy_operator_and_conflicts_are_problems() -> None:
    conflicted = member("b", None)
    conflicted["status"]["conditions"] = [
        condition("Allocated", "False", "Conflict", "100.64.0.1 is also held by a")
    ]
    report = build_report(
        [network(exhausted=True)],
        [member("a", "100.64.0.1"), conflicted],
        OperatorReport(Health.UNHEALTHY, "reef-operator: 0/1 available"),
    )
    text = "\n".join(report.problems)
    assert "pool exhausted" in text
    assert "operator: reef-operator: 0/1 available" in text
    assert "conflict: b: Conflict" in text


def test_a_wg_quick_member_is_judged_by_what_the_others_say() -> None:
    wg = {"mesh.reef.dev/dataplane": "wg-quick"}
    agents = [
        member("a", "100.64.0.1"),
        member("laptop", "100.64.0.9", node="", labels=wg, reported=False),
    ]
    report = build_report([network()], agents, OPERATOR_OK)
    laptop = next(m for m in report.members if m.name == "laptop")
    assert laptop.health is Health.HEALTHY
    assert laptop.external
    assert laptop.agentless
    agents[0] = member("a", "100.64.0.1", cannot_reach=("laptop",))
    report = build_report([network()], agents, OPERATOR_OK)
    assert not report.healthy
    assert next(m for m in report.members if m.name == "laptop").health is Health.UNHEALTHY


def test_the_table_is_plain_without_colour_and_coloured_with_it() -> None:
    agents = [member("a", "100.64.0.1", cannot_reach=("b",)), member("b", "100.64.0.2")]
    report = build_report([network()], agents, OPERATOR_OK)
    plain = render_status(report)
    assert "\x1b[" not in plain
    assert "mesh: UNHEALTHY" in plain
    assert "a -> b" in plain
    assert "254" in plain
    assert "\x1b[31m" in render_status(report, colour=True)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
@pytest.mark.parametrize("topology", ["FullMesh", "Hub"])
def test_dot_output_is_accepted_by_graphviz(topology: str) -> None:
    agents = [
        member("hub", "100.64.0.1", role="Hub"),
        member('we"ird\\name', "100.64.0.2", cannot_reach=("hub",)),
        member("c", "100.64.0.3"),
    ]
    report = build_report([network(topology=topology)], agents, OPERATOR_OK)
    dot = render_dot(report.pools, report.members)
    result = subprocess.run(
        ["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr + dot
    assert BROKEN_EDGE in dot
    assert HEALTHY_EDGE in dot
    edges = dot.count(" -- ")
    assert edges == (3 if topology == "FullMesh" else 2)


def test_wg_quick_config_has_the_planned_peers_and_keeps_nat_open() -> None:
    private = Key.generate()
    me = member("laptop", "100.64.0.9", node="", key=private.public_key(), reported=False)
    others = [
        member("a", "100.64.0.1", endpoint="198.18.0.1:51820"),
        member("behind-nat", "100.64.0.2", node=""),
        member("pending", None),
    ]
    net = read_mesh_network(network())
    plan = plan_peers(
        read_mesh_agent(me),
        private.public_key(),
        [read_mesh_agent(o) for o in [me, *others]],
        net.spec,
    )
    text = render_wg_quick(
        name="laptop",
        network="net",
        private_key=private,
        addresses=("100.64.0.9",),
        listen_port=None,
        mtu=None,
        plan=plan,
    )
    assert f"PrivateKey = {private.base64()}" in text
    assert "Address = 100.64.0.9/32" in text
    assert "ListenPort" not in text
    blocks = {
        block.split("\n", 1)[0].removeprefix("# "): block
        for block in text.split("\n\n")
        if "[Peer]" in block
    }
    assert set(blocks) == {"a", "behind-nat"}
    assert "AllowedIPs = 100.64.0.1/32" in blocks["a"]
    assert "Endpoint = 198.18.0.1:51820" in blocks["a"]
    assert "Endpoint" not in blocks["behind-nat"]
    assert all("PersistentKeepalive = 25" in b for b in blocks.values())
    assert "not yet included pending" in text
    redacted = render_wg_quick(
        name="laptop",
        network="net",
        private_key=None,
        addresses=("100.64.0.9",),
        listen_port=51820,
        mtu=1380,
        plan=plan,
    )
    assert PRIVATE_KEY_PLACEHOLDER in redacted
    assert private.base64() not in redacted
    assert "ListenPort = 51820" in redacted
    assert "MTU = 1380" in redacted


def test_config_files_are_written_0600_even_over_a_looser_file(tmp_path: Path) -> None:
    path = tmp_path / "reef0.conf"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "secret"


def test_the_agent_start_path_imports_no_cli_module() -> None:
    # `reef agent` without REEF_NODE_NAME stops right after loading its own modules.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reef", "agent"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": f"{REPO / 'operator'}:{REPO}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "reef.agent.main" in imported
    assert not [m for m in imported if m.startswith("reef.cli")]


def test_keygen_creates_a_0600_key_and_never_overwrites_it(tmp_path: Path) -> None:
    path = tmp_path / "host.key"
    env = {"PYTHONPATH": f"{REPO / 'operator'}:{REPO}", "PATH": "/usr/bin:/bin"}
    first = subprocess.run(
        [sys.executable, "-m", "reef", "keygen", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    key = Key.from_base64(path.read_text().strip())
    assert first.stdout.strip() == key.public_key().base64()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = subprocess.run(
        [sys.executable, "-m", "reef", "keygen", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert again.returncode == 2
    assert "never overwritten" in again.stderr
    assert Key.from_base64(path.read_text().strip()) == key
