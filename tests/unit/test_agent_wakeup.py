"""When the agent loop wakes: a status write due before the sync began does not make the
loop spin while it backs off (bench.agent_scale saw 31 115 syncs in 60 s from one agent)."""

from __future__ import annotations

from reef.agent.agent import wake_at

RESYNC, HEALTH = 300.0, 105.0


def test_a_write_due_in_the_future_or_during_the_sync_wakes_the_loop_for_it() -> None:
    assert wake_at(100.0, RESYNC, HEALTH, None, 103.0) == 103.0
    # due while the sync ran (it began at 100): the next sync writes it at once
    assert wake_at(100.0, RESYNC, HEALTH, None, 100.5) == 100.5


def test_a_write_due_before_the_sync_began_waits_for_the_back_off_not_a_spin() -> None:
    # the write failed in the last sync (retry at 102): the loop sleeps until then
    assert wake_at(100.0, RESYNC, HEALTH, 102.0, 99.0) == 102.0
    # no retry pending (e.g. no address yet): the next health check comes back to it
    assert wake_at(100.0, RESYNC, HEALTH, None, 99.0) == HEALTH


def test_without_a_write_due_the_earliest_timer_wins() -> None:
    assert wake_at(100.0, RESYNC, HEALTH, None, None) == HEALTH
    assert wake_at(100.0, 101.0, HEALTH, 102.0, None) == 101.0
