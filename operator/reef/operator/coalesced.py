"""A background task that runs one piece of work per burst of requests.

Requests set an event; the worker clears it before each run, so any number of requests
made while a run is in flight cost exactly one more run, and none is lost. A failed run
is logged and the worker waits for the next request (the callers' own triggers, e.g. a
timer or the next watch event, ask again).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn


async def run_coalesced(
    wanted: asyncio.Event,
    work: Callable[[], Awaitable[None]],
    *,
    log: logging.Logger,
    failure: str,
) -> NoReturn:
    """Await ``wanted``, clear it, run ``work``; forever. ``failure`` is logged with the
    traceback when a run raises (anything but cancellation)."""
    while True:
        await wanted.wait()
        wanted.clear()
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s", failure)
