"""Settings read from REEF_* variables: names, types, precedence and errors."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from reef.settings import AgentSettings, OperatorSettings


def test_variables_are_read_by_prefixed_upper_case_name_and_converted() -> None:
    settings = AgentSettings.from_environment(
        {
            "REEF_NODE_NAME": "n1",
            "REEF_METRICS_PORT": "0",
            "REEF_EXTERNAL_HOST": "true",
            "REEF_KEY_DIR": "/tmp/keys",
            "REEF_HEALTH_CHECK_SECONDS": "1.5",
            "UNRELATED": "x",
        }
    )
    assert settings.node_name == "n1"
    assert settings.metrics_port == 0
    assert settings.external_host is True
    assert settings.key_dir == Path("/tmp/keys")
    assert settings.health_check_seconds == 1.5
    assert settings.network == "default"  # unset: the field's default


def test_names_match_whatever_their_case_and_overrides_win() -> None:
    settings = AgentSettings.from_environment(
        {"reef_node_name": "lower", "Reef_Network": "mixed"}, network="given"
    )
    assert (settings.node_name, settings.network) == ("lower", "given")


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REEF_NAMESPACE", "elsewhere")
    assert OperatorSettings.from_environment().namespace == "elsewhere"


@pytest.mark.parametrize(
    ("environment", "field"),
    [
        ({}, "node_name"),  # required, missing
        ({"REEF_NODE_NAME": "n", "REEF_METRICS_PORT": "ninety"}, "metrics_port"),
        ({"REEF_NODE_NAME": "n", "REEF_INTERFACE": "much-too-long-name"}, "interface"),
        ({"REEF_NODE_NAME": "n", "REEF_BACKEND": "ebpf"}, "backend"),
    ],
)
def test_a_missing_or_invalid_variable_is_an_error_naming_its_field(
    environment: dict[str, str], field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        AgentSettings.from_environment(environment)
    assert [error["loc"] for error in raised.value.errors()] == [(field,)]
