"""A list-then-watch cache of API objects, feeding the agent's asyncio loop.

The list and the watch run in a thread of their own (reef.kube.listwatch); every change
reaches the loop with ``call_soon_threadsafe``. After a "410 Gone" or a broken stream the
thread lists again and the cache is replaced, so it converges. The agent reacts to
:attr:`Informer.changed`, never to a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from reef.kube.client import Kube
from reef.kube.listwatch import ListWatch, without_managed_fields

__all__ = ["Informer", "without_managed_fields"]

Body = dict[str, Any]


class Informer(ListWatch):
    """All objects of one plural matching a field selector, kept current by watch.

    Custom objects of the reef API by default; ``plural="nodes"`` follows core Nodes
    (the agent watches its own Node, by name, the way the kubelet does).
    """

    def __init__(
        self,
        kube: Kube,
        plural: str,
        field_selector: str,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[], None],
        *,
        optional: bool = False,
        relevant: Callable[[Body], Hashable] | None = None,
        keep: Callable[[Body], Any] | None = None,
        refresh_quietly: Callable[[Body], bool] | None = None,
    ) -> None:
        super().__init__(kube, plural, field_selector)
        #: What of an object matters to the consumer: a modification that leaves it equal
        #: wakes no one (e.g. another member's health report).
        self._relevant = relevant
        #: What of an object the cache holds (after managedFields are dropped), applied on
        #: the informer's thread: at thousands of objects the cache is the agent's memory.
        #: It may be a record derived from the body instead of a body.
        self._keep = keep or _whole
        #: Whether a modification that is not relevant still replaces the cached object
        #: (without waking anyone); when not, it is dropped on the informer's thread before
        #: anything is made of it: at 5000 members, a rolling update's status writes
        #: cost the agent a JSON parse each and nothing more.
        self._refresh_quietly = refresh_quietly or _always
        #: The informer thread's own record of each object's relevant part (a hash: 8 bytes
        #: per object; two different values share one with a chance of 2**-64).
        self._fingerprints: dict[str, int] = {}
        #: Optional: a 403 (RBAC without the read) counts as "synced, nothing visible".
        self._optional = optional
        self.objects: dict[str, Any] = {}
        self.synced = asyncio.Event()
        #: Names changed (relevantly) since :meth:`take_changes`; None: all (a new list).
        self._changes: set[str] | None = None
        self._loop = loop
        self._on_change = on_change
        #: What the list under way has read so far (the informer thread's).
        self._listing: dict[str, Any] = {}
        self._listing_fingerprints: dict[str, int] = {}

    # --- loop side -------------------------------------------------------------

    def take_changes(self) -> set[str] | None:
        """Names of the objects changed since the last call (each one's current state is
        in :attr:`objects`, gone when deleted); None when everything may have changed
        (first call, or the cache was listed again). Lets a consumer do work
        proportional to what changed instead of re-reading every object."""
        changes, self._changes = self._changes, set()
        return changes

    def _replace(self, objects: dict[str, Any]) -> None:
        self.objects = objects
        self._changes = None
        self.synced.set()
        self._on_change()

    def _apply(self, kind: str, name: str, kept: Any, relevant_change: bool) -> None:
        if kind == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = kept
        if not relevant_change:
            return
        if self._changes is not None:
            self._changes.add(name)
        self._on_change()

    # --- thread side ------------------------------------------------------------

    def _list_started(self) -> None:
        self._listing, self._listing_fingerprints = {}, {}

    def _listed(self, item: Body) -> None:
        name = item["metadata"]["name"]
        if self._relevant is not None:
            self._listing_fingerprints[name] = hash(self._relevant(item))
        self._listing[name] = self._keep(item)

    def _list_finished(self) -> None:
        objects, self._listing = self._listing, {}
        self._fingerprints, self._listing_fingerprints = self._listing_fingerprints, {}
        self._loop.call_soon_threadsafe(self._replace, objects)

    def _failed(self, status: int | None) -> None:
        if status == 403 and self._optional and not self.synced.is_set():
            self._loop.call_soon_threadsafe(self._replace, {})

    def _hand_over(self, kind: str, body: Body) -> None:
        """One event to the loop, reduced to what the cache keeps (informer thread)."""
        name = body["metadata"]["name"]
        relevant_change = True
        if kind == "DELETED":
            self._fingerprints.pop(name, None)
        elif self._relevant is not None:
            fingerprint = hash(self._relevant(body))
            relevant_change = kind != "MODIFIED" or self._fingerprints.get(name) != fingerprint
            self._fingerprints[name] = fingerprint
            if not relevant_change and not self._refresh_quietly(body):
                return
        kept = self._keep(without_managed_fields(body))
        self._loop.call_soon_threadsafe(self._apply, kind, name, kept, relevant_change)


def _whole(body: Body) -> Body:
    return body


def _always(body: Body) -> bool:
    return True
