"""The account of a ping run tells the request still on the wire at SIGINT from a lost one."""

from __future__ import annotations

import pytest

from tests.support.ping import account


def _reply(seq: int, dup: bool = False) -> str:
    return f"64 bytes from 100.64.0.2: icmp_seq={seq} ttl=64 time=0.5 ms{' (DUP!)' if dup else ''}"


def _run(lines: list[str], transmitted: int, received: int) -> str:
    summary = (
        "--- 100.64.0.2 ping statistics ---",
        f"{transmitted} packets transmitted, {received} received, 0% packet loss, time 731ms",
    )
    return "\n".join(["PING 100.64.0.2 (100.64.0.2) 56(84) bytes of data.", *lines, *summary])


def test_the_request_in_flight_at_sigint_is_not_a_loss() -> None:
    pings = account(_run([_reply(s) for s in range(1, 32)], transmitted=32, received=31))
    assert pings.lost == []
    assert pings.unanswered_at_stop == 1


def test_a_request_without_reply_before_a_later_reply_is_lost() -> None:
    replies = [_reply(s) for s in range(1, 33) if s != 17]
    pings = account(_run(replies, transmitted=32, received=31))
    assert pings.lost == [17]
    assert pings.unanswered_at_stop == 0


def test_errors_are_not_replies_and_duplicates_count_once() -> None:
    lines = [
        _reply(1),
        "From 100.64.0.1 icmp_seq=2 Destination Host Unreachable",
        _reply(3),
        _reply(3, dup=True),
    ]
    pings = account(_run(lines, transmitted=3, received=2))
    assert pings.answered == {1, 3}
    assert pings.lost == [2]


def test_output_without_a_summary_is_refused() -> None:
    with pytest.raises(ValueError, match="no summary"):
        account(_reply(1))
