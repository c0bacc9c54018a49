"""A running agent's /metrics: reef_build_info, reef_agent_ready, and every agent metric the
chart's PrometheusRule and Grafana dashboard use (their operator side:
tests/install/test_observability.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from tests.agent.bed import AgentBed
from tests.agent.test_mesh import ready_with_peers
from tests.install.observability import exported_names, expressions, metrics_used, render_pack
from tests.support.mesh import MeshApi, wait_for_agents
from tests.testbed.clients import KubeCLI

METRICS_PORT = "9091"  # the chart's default agent.metricsPort; each node is its own netns
SCRAPE = (
    "import urllib.request, sys;"
    f" sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/metrics',"
    " timeout=10).read().decode())"
)


def test_agent_exports_every_metric_the_rules_and_dashboard_use(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str, helm: KubeCLI, tmp_path: Path
) -> None:
    used = metrics_used(expressions(*render_pack(helm, tmp_path)))
    wanted = {name for name in used if name.startswith("reef_agent_")}
    assert {"reef_agent_ready", "reef_agent_peers", "reef_agent_peers_healthy"} <= wanted

    agents = bed(["a"])
    agents.start("a", REEF_METRICS_PORT=METRICS_PORT)
    wait_for_agents(mesh, network, ready_with_peers(agents, ["a"], 0), timeout=90)
    text = agents.node("a").run(sys.executable, "-c", SCRAPE).stdout

    missing = wanted - exported_names(text)
    assert not missing, f"used by the rules or the dashboard but not exported: {missing}"
    assert 'reef_build_info{component="agent"' in text
    assert "reef_agent_ready 1.0" in text
