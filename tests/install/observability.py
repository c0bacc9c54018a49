"""The chart's observability pack (PrometheusRule, Grafana dashboard) and what /metrics says.

Both the alert rules and the dashboard are rendered from the chart as a user gets them;
the metric names their PromQL uses are then checked against the exposition text of a
running operator (tests/install/test_observability.py) and agent
(tests/agent/test_agent_metrics.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.install.helm_release import CHART, documents, write_values
from tests.testbed.clients import KubeCLI

OBSERVABILITY_VALUES = {
    "metrics": {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}
}
_METRIC = re.compile(r"\breef_[a-z0-9_]+\b")
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def render_pack(helm: KubeCLI, workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(PrometheusRule spec, dashboard JSON) as the chart renders them with the pack on."""
    values = write_values(workdir, OBSERVABILITY_VALUES)
    objects = documents(
        helm("template", "reef", str(CHART), "-n", "reef-system", "-f", str(values)).stdout
    )
    (rule,) = (o for o in objects if o["kind"] == "PrometheusRule")
    (dashboard,) = (
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")
    )
    return rule["spec"], json.loads(dashboard["data"]["reef.json"])


def expressions(rule_spec: dict[str, Any], dashboard: dict[str, Any]) -> list[str]:
    exprs = [rule["expr"] for group in rule_spec["groups"] for rule in group["rules"]]
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def metrics_used(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in _METRIC.findall(expr)}


def exported_names(exposition: str) -> set[str]:
    """Every series name /metrics declares: its families (``# TYPE`` lines, present from
    the start even for a labelled metric with no series yet) and a histogram's series."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(name + suffix for suffix in _HISTOGRAM_SERIES)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
