"""Import modules on a thread while the main thread waits on the network.

The early registration (reef.agent.early) spends ≈ 30 ms of a start waiting: a TLS
handshake and three round trips to the API server. The agent then imports pyroute2
(≈ 45 ms of CPU) before it can touch its interface. Importing it on a thread during
those waits fills time that was idle.

The thread is joined before the main thread goes on, so the two never import at the
same time (no two threads can then wait on each other's module locks); the switch
interval is shortened meanwhile so that the main thread, woken by an answer, gets the
interpreter back within half a millisecond instead of five. Whatever goes wrong on the
thread is only logged: the agent imports the same modules again where it needs them
and meets the error there, as it would have without this.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import threading
from collections.abc import Iterator, Sequence

log = logging.getLogger(__name__)

#: The interpreter's switch interval while the thread runs (seconds; the default is 5 ms).
SWITCH_INTERVAL_SECONDS = 0.0005


def _import_all(modules: Sequence[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # the agent imports it again and reports it there
            log.debug("preloading %s failed: %s", name, error)
            return


@contextlib.contextmanager
def imports_while_waiting(modules: Sequence[str]) -> Iterator[None]:
    """Import ``modules`` on a thread while the body runs; joined when the body ends.

    The body must not import anything itself (it should only wait on sockets).
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    thread = threading.Thread(
        target=_import_all, args=(tuple(modules),), name="preload", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        thread.join()
        sys.setswitchinterval(interval)
