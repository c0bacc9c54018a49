"""Render the settings reference (docs/settings.md) from :mod:`reef.settings`.

    python -m reef.settings_doc > docs/settings.md

The reference is generated, never written by hand, so it cannot drift from the code:
tests/unit/test_settings_doc.py fails when docs/settings.md is not what this prints.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

from reef.settings import (
    AgentSettings,
    EnvironmentSettings,
    KubeSettings,
    OperatorSettings,
    SettingField,
    setting_fields,
)

HEADER = """\
# Settings reference

Generated from `operator/reef/settings.py` by `python -m reef.settings_doc > docs/settings.md`
(a test keeps it current). Every setting is an environment variable; the Helm chart sets the
ones it has values for (the **chart value** column) and `operator.extraEnv` /
`agent.extraEnv` set any other. An invalid value stops the process at start with a message
naming the variable.
"""

CHART_VALUES = {
    (OperatorSettings, "log_format"): "operator.logFormat",
    (OperatorSettings, "log_level"): "operator.logLevel",
    (OperatorSettings, "metrics_port"): "operator.metricsPort",
    (OperatorSettings, "health_port"): "operator.healthPort",
    (OperatorSettings, "repair_interval_seconds"): "operator.repairIntervalSeconds",
    (OperatorSettings, "release_grace_seconds"): "operator.releaseGraceSeconds",
    (OperatorSettings, "api_workers"): "operator.apiWorkers",
    (OperatorSettings, "namespace"): "(the release namespace)",
    (AgentSettings, "log_format"): "agent.logFormat",
    (AgentSettings, "log_level"): "agent.logLevel",
    (AgentSettings, "metrics_port"): "agent.metricsPort",
    (AgentSettings, "network"): "network.name",
    (AgentSettings, "interface"): "agent.interface",
    (AgentSettings, "backend"): "agent.backend",
    (AgentSettings, "key_dir"): "agent.keyDir",
    (AgentSettings, "resync_seconds"): "agent.resyncSeconds",
    (AgentSettings, "status_min_interval_seconds"): "agent.statusMinIntervalSeconds",
    (AgentSettings, "node_name"): "(downward API: spec.nodeName)",
    (AgentSettings, "node_ip"): "(downward API: status.hostIP)",
}

SECTIONS: tuple[tuple[str, type[EnvironmentSettings]], ...] = (
    ("Operator (`reef operator`)", OperatorSettings),
    ("Agent (`reef agent`)", AgentSettings),
)


def _type_name(annotation: object) -> str:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        names = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " \\| ".join(names)
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "Path": "path"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _default(field: SettingField) -> str:
    if field.required:
        return "**required**"
    if field.default is None:
        return "unset"
    return f"`{field.default}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    lines = [HEADER]
    shared_names = {field.name for field in setting_fields(KubeSettings)}
    for title, model in SECTIONS:
        lines += [
            f"## {title}",
            "",
            "| variable | type | default | chart value | meaning |",
            "|---|---|---|---|---|",
        ]
        for field in setting_fields(model):
            name = field.name
            shared = name in shared_names
            meaning = _cell(field.description or "")
            if shared:
                meaning += " (both processes)"
            lines.append(
                f"| `{model.variable(name)}` | {_type_name(field.annotation)} | {_default(field)}"
                f" | {CHART_VALUES.get((model, name), '—')} | {meaning} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 2:
        Path(sys.argv[1]).write_text(render())
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
