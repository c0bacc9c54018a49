"""The settings reference's "chart value" column is true: the chart sets those variables."""

from __future__ import annotations

from tests.install.helm_release import CHART, documents
from tests.testbed.clients import KubeCLI


def test_settings_the_reference_maps_to_chart_values_are_set_by_the_chart(helm: KubeCLI) -> None:
    from reef.settings import AgentSettings, OperatorSettings
    from reef.settings_doc import CHART_VALUES

    objects = documents(helm("template", "reef", str(CHART), "-n", "reef-system").stdout)
    env = {
        kind: {e["name"] for e in o["spec"]["template"]["spec"]["containers"][0]["env"]}
        for o in objects
        for kind in [o["kind"]]
        if kind in ("Deployment", "DaemonSet")
    }
    for (model, name), value in CHART_VALUES.items():
        kind = "Deployment" if model is OperatorSettings else "DaemonSet"
        assert model in (OperatorSettings, AgentSettings)
        assert f"REEF_{name.upper()}" in env[kind], f"{value}: the chart does not set it"
