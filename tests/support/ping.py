"""A ping(8) running in a node, read reply by reply, and the account of what it lost.

ping's own summary cannot say whether traffic was lost: when it is stopped with SIGINT
it counts the request it sent a moment before as transmitted and exits without waiting
for the reply, so "32 transmitted, 31 received" is the normal end of a clean run
whenever a reply was still on the wire. What the mesh lost shows in the sequence
numbers instead: a request with no reply that was followed by one with a reply.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass

_REPLY = re.compile(r"bytes from .*icmp_seq=(\d+)")
_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


@dataclass(frozen=True)
class PingAccount:
    transmitted: int
    answered: frozenset[int]

    @property
    def last_answered(self) -> int:
        return max(self.answered, default=0)

    @property
    def lost(self) -> list[int]:
        """Requests that got no reply although a later one did: lost on the way."""
        return [seq for seq in range(1, self.last_answered + 1) if seq not in self.answered]

    @property
    def unanswered_at_stop(self) -> int:
        """Requests after the last reply: still in flight when ping was stopped."""
        return self.transmitted - self.last_answered


def account(output: str) -> PingAccount:
    """What ping's whole output says was sent and answered (duplicates count once)."""
    summary = _SUMMARY.search(output)
    if summary is None:
        raise ValueError(f"ping printed no summary:\n{output}")
    answered = frozenset(int(m[1]) for m in _REPLY.finditer(output))
    return PingAccount(transmitted=int(summary[1]), answered=answered)


class PingStream:
    """A running ping whose output is kept whole while the test waits on its replies.

    It reads the pipe's descriptor directly: select() on a buffered file object can
    miss lines that a previous readline() already pulled into the buffer.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self._fd = process.stdout.fileno()
        self._text = ""

    def wait_for_replies(self, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` more replies arrived; a lost request prints nothing, so a
        broken path shows as this deadline passing."""
        target = len(_REPLY.findall(self._text)) + count
        deadline = time.monotonic() + timeout
        while len(_REPLY.findall(self._text)) < target:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._fd], [], [], max(0.0, left))
            assert ready, f"fewer than {count} ping replies within {timeout:.0f} s:\n{self._text}"
            chunk = os.read(self._fd, 65536)
            assert chunk, f"ping ended:\n{self._text}"
            self._text += chunk.decode(errors="replace")

    def stop(self) -> tuple[PingAccount, str]:
        """Interrupt ping, collect the rest of its output and account for every request."""
        self.process.send_signal(signal.SIGINT)
        rest, _ = self.process.communicate(timeout=30)
        self._text += rest
        return account(self._text), self._text
