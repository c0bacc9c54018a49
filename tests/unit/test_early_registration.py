"""reef.agent.early reads the agent's settings as reef.settings does, and steps aside
whenever it cannot simply register."""

import logging
from pathlib import Path

import pytest

from reef.agent import early
from reef.settings import AgentSettings, setting_fields


def test_the_settings_read_early_are_agent_settings_with_the_same_defaults() -> None:
    for field, default in early.DEFAULTS.items():
        (declared_field,) = [f for f in setting_fields(AgentSettings) if f.name == field]
        declared = None if declared_field.required else declared_field.default
        if field == "external_host":
            assert declared is False  # early: any value at all means "leave it"
            continue
        expected = None if declared is None else str(declared)
        assert default == expected, field


@pytest.mark.parametrize(
    "environment",
    [
        {"REEF_NODE_NAME": "n"},  # no credentials at all
        {"REEF_NODE_NAME": "n", "REEF_EXTERNAL_HOST": "true"},
        {"REEF_NODE_NAME": "", "KUBERNETES_SERVICE_HOST": "127.0.0.1"},
    ],
)
def test_what_it_cannot_do_is_left_to_the_agent_proper(
    environment: dict[str, str], tmp_path: Path
) -> None:
    assert early.register_early({"REEF_KEY_DIR": str(tmp_path), **environment}) is None


def test_an_unreachable_api_server_is_left_to_the_agent_proper(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "current-context: c\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    environment = {
        "REEF_NODE_NAME": "n",
        "REEF_KEY_DIR": str(tmp_path),
        "REEF_KUBECONFIG": str(kubeconfig),
    }
    assert early.register_early(environment) is None


def test_invalid_log_settings_skip_it_without_touching_logging(tmp_path: Path) -> None:
    handlers = list(logging.getLogger().handlers)
    environment = {"REEF_NODE_NAME": "n", "REEF_KEY_DIR": str(tmp_path), "REEF_LOG_FORMAT": "xml"}
    assert early.register_early(environment) is None
    assert logging.getLogger().handlers == handlers
    assert not list(tmp_path.iterdir()), "no key created"
