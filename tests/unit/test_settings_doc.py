"""docs/settings.md is exactly what reef.settings_doc renders from reef.settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from reef.settings_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_settings_reference_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/settings.md is stale: run `python -m reef.settings_doc docs/settings.md`"
    )


def test_every_setting_is_in_the_reference() -> None:
    from reef.settings import AgentSettings, OperatorSettings, setting_fields

    text = render()
    for model in (OperatorSettings, AgentSettings):
        for field in setting_fields(model):
            assert f"`REEF_{field.name.upper()}`" in text


def test_too_long_interface_name_is_a_settings_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reef.agent.main import run_agent

    monkeypatch.setenv("REEF_NODE_NAME", "node-a")
    monkeypatch.setenv("REEF_INTERFACE", "reef-mesh-interface")  # 19 > 15 characters
    assert run_agent() == 2
    out = capsys.readouterr().out
    assert "invalid settings" in out
    assert "interface" in out
    assert "at most 15 characters" in out
