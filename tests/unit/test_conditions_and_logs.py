"""Pure helpers shared by the operator and the agent: conditions, durations, JSON logs."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, timedelta

import pytest

from reef.api.conditions import set_condition
from reef.api.durations import parse_duration
from reef.observability.logs import json_formatter

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_last_transition_time_changes_only_when_status_flips() -> None:
    first = set_condition(
        [], type_="Ready", status="False", reason="A", message="m", observed_generation=1, now=T0
    )
    reworded = set_condition(
        first,
        type_="Ready",
        status="False",
        reason="B",
        message="n",
        observed_generation=2,
        now=T0 + timedelta(minutes=1),
    )
    flipped = set_condition(
        reworded,
        type_="Ready",
        status="True",
        reason="C",
        message="o",
        observed_generation=2,
        now=T0 + timedelta(minutes=2),
    )
    assert reworded[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert reworded[0]["reason"] == "B"
    assert flipped[0]["lastTransitionTime"] == "2026-11-26T09:02:00Z"


def test_setting_one_condition_keeps_the_others() -> None:
    theirs = [
        {
            "type": "Allocated",
            "status": "True",
            "reason": "Allocated",
            "message": "",
            "lastTransitionTime": "2026-11-26T08:00:00Z",
            "observedGeneration": 1,
        }
    ]
    mine = set_condition(
        theirs, type_="Ready", status="True", reason="R", message="", observed_generation=1
    )
    assert mine[0] == theirs[0]
    assert [c["type"] for c in mine] == ["Allocated", "Ready"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("5m", 300), ("24h", 86400), ("1h30m", 5400), ("2.5s", 2.5), ("250ms", 0.25)],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "five minutes", "5 m", "m5", "1d", "-5m", "1h 30m"])
def test_malformed_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected a number with a unit"):
        parse_duration(text)


def test_json_log_lines_carry_message_level_and_extras() -> None:
    record = logging.LogRecord(
        "reef.test", logging.WARNING, __file__, 1, "pool %s", ("full",), None
    )
    record.reason = "PoolExhausted"
    line = json.loads(json_formatter().format(record))
    assert line["message"] == "pool full"
    assert line["level"] == "WARNING"
    assert line["reason"] == "PoolExhausted"
    assert line["logger"] == "reef.test"
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)


def test_json_log_lines_carry_the_traceback() -> None:
    try:
        raise RuntimeError("ledger write failed")
    except RuntimeError:
        record = logging.LogRecord(
            "reef.test", logging.ERROR, __file__, 1, "batch", (), sys.exc_info()
        )
    line = json.loads(json_formatter().format(record))
    assert "RuntimeError: ledger write failed" in line["exception"]
