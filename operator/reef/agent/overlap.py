"""Make the early registration's calls on a thread while the agent's modules import.

The early registration (reef.agent.early) is a TLS handshake and three round trips to
the API server: 30-70 ms in which the process only waits. Importing the agent (pyroute2,
asyncio, reef's agent and dataplane modules) is ≈ 100 ms of CPU. Run side by side, the
waits disappear behind the imports.

Only this thread imports: the calls must not (a test holds them to that), so no two
threads can wait on each other's module locks. The switch interval is shortened
meanwhile, so that the calls' thread, woken by an answer, gets the interpreter within
half a millisecond instead of the default five, and the registration is not delayed by
the imports it runs beside.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

#: The interpreter's switch interval while both run (seconds; Python's default is 5 ms).
SWITCH_INTERVAL_SECONDS = 0.0005


def run_while_importing(work: Callable[[], T], modules: Sequence[str]) -> T:
    """``work()`` on a thread while this thread imports ``modules``; its result, or its
    exception once the imports are done. An import error is raised after ``work`` ended."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    thread = threading.Thread(target=run, name="early-registration", daemon=True)
    thread.start()
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        thread.join()
        sys.setswitchinterval(interval)
    if failure:
        raise failure[0]
    return outcome[0]
