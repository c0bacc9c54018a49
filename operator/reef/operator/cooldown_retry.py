"""One retry of a network's unsettled MeshAgents per cool-down deadline, not per release.

Every release makes an address reusable when its cool-down ends, and each retry is a
full LIST of the network's MeshAgents. Deadlines are rounded up to a slot of
COALESCE_SECONDS, and each slot holds at most one timer: a burst of N deletions costs
one LIST per slot it spans, and no retry ever runs before the cool-down it waits for.
"""

import asyncio
import math
from collections.abc import Callable
from typing import Any

#: Width of one retry slot (seconds): deletions whose cool-downs end within it share a LIST.
COALESCE_SECONDS = 1.0


class CooldownRetries:
    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        call_at: Callable[[float, Callable[[], None]], Any] | None = None,
    ) -> None:
        # Defaults are the running loop's; unit tests pass a fake clock and timer.
        self._clock = clock
        self._call_at = call_at
        self._slots: set[int] = set()

    @property
    def pending(self) -> int:
        """Retries scheduled and not yet fired."""
        return len(self._slots)

    def schedule(self, delay: float, retry: Callable[[], None]) -> bool:
        """Run ``retry`` at least ``delay`` seconds from now; False if a pending retry
        of the same slot already covers it."""
        clock, call_at = self._clock, self._call_at
        if clock is None or call_at is None:
            loop = asyncio.get_running_loop()
            clock, call_at = loop.time, loop.call_at
        slot = math.ceil((clock() + delay) / COALESCE_SECONDS)
        if slot in self._slots:
            return False
        self._slots.add(slot)

        def fire() -> None:
            self._slots.discard(slot)
            retry()

        call_at(slot * COALESCE_SECONDS, fire)
        return True
