"""Settings read from REEF_* variables: names, types, precedence and errors."""

from pathlib import Path

import pytest

from reef.settings import AgentSettings, OperatorSettings, SettingsError


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
    with pytest.raises(SettingsError) as raised:
        AgentSettings.from_environment(environment)
    assert raised.value.fields == (field,)
    assert f"{field} (REEF_{field.upper()}): " in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "text", "field", "value"),
    [
        ("REEF_METRICS_PORT", " 8080 ", "metrics_port", 8080),
        ("REEF_RESYNC_SECONDS", "2", "resync_seconds", 2.0),
        ("REEF_EXTERNAL_HOST", "Yes", "external_host", True),
        ("REEF_EXTERNAL_HOST", "off", "external_host", False),
        ("REEF_EXTERNAL_HOST", "0", "external_host", False),
        ("REEF_LOG_FORMAT", "text", "log_format", "text"),
        ("REEF_ENDPOINT", "198.18.0.1:51820", "endpoint", "198.18.0.1:51820"),
        ("REEF_KUBECONFIG", "/etc/kube.conf", "kubeconfig", Path("/etc/kube.conf")),
    ],
)
def test_variables_are_converted_as_lax_as_pydantic_did(
    variable: str, text: str, field: str, value: object
) -> None:
    settings = AgentSettings.from_environment({"REEF_NODE_NAME": "n", variable: text})
    converted = getattr(settings, field)
    assert converted == value
    assert type(converted) is type(value)


@pytest.mark.parametrize(
    ("variable", "text", "problem"),
    [
        ("REEF_METRICS_PORT", "8080.5", "not an integer"),
        ("REEF_METRICS_PORT", "", "not an integer"),
        ("REEF_RESYNC_SECONDS", "soon", "not a number"),
        ("REEF_EXTERNAL_HOST", "maybe", "not a boolean"),
        ("REEF_LOG_FORMAT", "xml", "not one of json|text"),
        ("REEF_INTERFACE", "", "at least 1 characters"),
        ("REEF_INTERFACE", "reef 0", "does not match"),
        ("REEF_INTERFACE", "a/b", "does not match"),
        ("REEF_INTERFACE", "x" * 16, "at most 15 characters"),
    ],
)
def test_an_invalid_value_says_what_is_wrong(variable: str, text: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        AgentSettings.from_environment({"REEF_NODE_NAME": "n", variable: text})


def test_every_problem_is_reported_at_once_by_field_and_variable() -> None:
    with pytest.raises(SettingsError) as raised:
        AgentSettings.from_environment({"REEF_METRICS_PORT": "x", "REEF_BACKEND": "ebpf"})
    assert set(raised.value.fields) == {"node_name", "metrics_port", "backend"}
    message = str(raised.value)
    assert "node_name (REEF_NODE_NAME): required, not set" in message
    assert "metrics_port (REEF_METRICS_PORT): not an integer: 'x'" in message
    assert "backend (REEF_BACKEND): not one of auto|kernel|userspace: 'ebpf'" in message


def test_typed_overrides_are_kept_and_checked_like_variables() -> None:
    settings = OperatorSettings.from_environment({}, metrics_port=0, namespace="ns")
    assert (settings.metrics_port, settings.namespace) == (0, "ns")
    with pytest.raises(SettingsError, match="api_workers"):
        OperatorSettings.from_environment({}, api_workers=True)


def test_an_invalid_operator_setting_stops_it_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reef.operator.main import run_operator

    monkeypatch.setenv("REEF_HEALTH_PORT", "eighty")
    assert run_operator() == 2
    out = capsys.readouterr().out
    assert "invalid settings" in out
    assert "health_port (REEF_HEALTH_PORT): not an integer" in out
