"""The PrometheusRule is valid for Prometheus, and every metric it and the dashboard use is
one the operator really exports (the agent's side: tests/agent/test_agent_metrics.py)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.install.observability import exported_names, expressions, metrics_used, render_pack
from tests.support.mesh import MeshApi, all_allocated, wait_for_agents
from tests.support.operator_process import OperatorProcess
from tests.testbed.clients import KubeCLI
from tests.testbed.controlplane import free_port

CIDR = "100.66.0.0/24"
ALERTS = {
    "ReefPoolNearlyExhausted",
    "ReefPoolExhausted",
    "ReefAgentNotReady",
    "ReefPeersUnhealthy",
    "ReefLedgerUnreadable",
    "ReefOperatorDown",
    "ReefAllocationConflict",
}


def test_prometheus_rule_passes_promtool_check_rules(helm: KubeCLI, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: scripts/setup.sh installs Debian's prometheus package"
    spec, _ = render_pack(helm, tmp_path)
    assert {rule["alert"] for group in spec["groups"] for rule in group["rules"]} == ALERTS
    rules = tmp_path / "reef-rules.yaml"
    rules.write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_every_operator_metric_of_the_rules_and_dashboard_is_exported(
    helm: KubeCLI,
    mesh: MeshApi,
    operators: Callable[..., OperatorProcess],
    network: str,
    tmp_path: Path,
) -> None:
    used = metrics_used(expressions(*render_pack(helm, tmp_path)))
    wanted = {name for name in used if not name.startswith("reef_agent_")}
    assert "reef_build_info" in wanted

    port = free_port()
    operators(env={"REEF_METRICS_PORT": str(port)}).start()
    mesh.create_network(network, [CIDR])
    mesh.create_agent(f"{network}-m0", network)
    wait_for_agents(mesh, network, all_allocated(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()

    missing = wanted - exported_names(text)
    assert not missing, f"used by the rules or the dashboard but not exported: {missing}"
    assert 'reef_build_info{component="operator"' in text
    assert f'reef_operator_pool_utilisation_ratio{{network="{network}"}}' in text
