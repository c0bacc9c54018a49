"""How the agent loop is woken and stopped, and how the agent ends with an exit code."""

from __future__ import annotations

import asyncio
import contextlib
import time

#: The loop's log records keep the logger name they had before the loop was split into
#: modules (log queries and dashboards select on it).
LOGGER_NAME = "reef.agent.agent"
#: Back-off before retrying a failed device configuration (an error, not an event wait).
RETRY_SECONDS = 2.0


class AgentExitError(Exception):
    """Stop the agent with this exit code; the message was already reported."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Wakeup:
    """Wakes the loop when an informer reports a change or a stop is asked."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.stopping = False

    def request_stop(self) -> None:
        self.stopping = True
        self._event.set()

    def changed(self) -> None:
        self._event.set()

    async def wait(self, deadline: float | None) -> None:
        """Until an informer reports a change, a stop is asked, or ``deadline`` (monotonic)."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()


def elapsed(started: float) -> float:
    """Seconds since ``started`` (monotonic), as the phase logs give them."""
    return round(time.monotonic() - started, 4)
