"""docs/settings.md is exactly what reef.settings_doc renders from reef.settings."""

from __future__ import annotations

from pathlib import Path

from reef.settings_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_settings_reference_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/settings.md is stale: run `python -m reef.settings_doc docs/settings.md`"
    )


def test_every_setting_is_in_the_reference() -> None:
    from reef.settings import AgentSettings, OperatorSettings

    text = render()
    for model in (OperatorSettings, AgentSettings):
        for name in model.model_fields:
            assert f"`REEF_{name.upper()}`" in text
