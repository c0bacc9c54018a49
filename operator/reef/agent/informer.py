"""A list-then-watch cache of API objects, feeding the agent's asyncio loop.

The watch is a blocking stream of JSON lines (read here, not through the official
client's ``Watch``, which builds an ``ApiClient`` of its own: reef.kube.http), so each
informer runs in its own daemon thread and hands every change to the loop with
``call_soon_threadsafe``. After a
"410 Gone" (the resourceVersion expired) or a broken stream it lists again, so the
cache converges; a backoff after errors keeps a dead API server from being hammered.
The agent reacts to :attr:`Informer.changed`, never to a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from reef.kube.client import Kube, custom_path
from reef.kube.writes import ApiException

log = logging.getLogger(__name__)

Body = dict[str, Any]
#: Server-side watch timeout: the stream is renewed (cheaply, from the last version).
WATCH_TIMEOUT_SECONDS = 300
_BACKOFF_INITIAL = 0.5
_BACKOFF_MAX = 15.0


#: Objects per page of an informer's list.
LIST_PAGE_SIZE = 500


class Informer:
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
        if plural == "nodes":
            self._list_call: Callable[..., Any] = kube.list_node_raw
            self._list_args: tuple[str, ...] = ()
        else:
            self._list_call = kube.list_raw
            self._list_args = (custom_path(plural),)
        #: Objects per list request (client-go's reflector pages by 500 too).
        self.page_size = LIST_PAGE_SIZE
        self.objects: dict[str, Any] = {}
        self.synced = asyncio.Event()
        #: Names changed (relevantly) since :meth:`take_changes`; None: all (a new list).
        self._changes: set[str] | None = None
        self._kube = kube
        self._plural = plural
        self._selector = field_selector
        self._loop = loop
        self._on_change = on_change
        self._stopping = threading.Event()
        #: The open watch response: stop() shuts its socket to end a blocked read.
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{plural}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            # Shutting the socket down wakes a thread blocked reading it (a close from
            # this thread could wait on the ssl lock the reader holds).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

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

    def _list(self) -> tuple[dict[str, Body], str]:
        """Every object and the list's resourceVersion, read a page at a time.

        All pages come from one snapshot (the ``continue`` token carries it), and each
        page is parsed and reduced to what the cache keeps before the next is read: a
        whole list of 5000 MeshAgents is ~30 MB of JSON and ~90 MB parsed, which the
        process would keep as resident memory long after the list was done.
        """
        objects: dict[str, Any] = {}
        fingerprints: dict[str, int] = {}
        token: str | None = None
        while True:
            response = self._list_call(
                *self._list_args,
                field_selector=self._selector,
                limit=self.page_size,
                _continue=token,
                _preload_content=False,
            )
            page: Body = json.loads(response.data)
            del response
            for item in page.get("items", []):
                name = item["metadata"]["name"]
                if self._relevant is not None:
                    fingerprints[name] = hash(self._relevant(item))
                objects[name] = self._keep(without_managed_fields(item))
            metadata = page["metadata"]
            token = metadata.get("continue") or None
            if token is None:
                self._fingerprints = fingerprints
                return objects, metadata["resourceVersion"]

    def _run(self) -> None:
        backoff = _BACKOFF_INITIAL
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    objects, version = self._list()
                    self._loop.call_soon_threadsafe(self._replace, objects)
                version = self._stream(version)
                backoff = _BACKOFF_INITIAL
            except Exception as error:
                if self._stopping.is_set():
                    return
                status = getattr(error, "status", None)
                if status == 410:
                    log.info("watch of %s expired; listing again", self._plural)
                    version = None
                    continue
                log.warning(
                    "watch of %s failed (%s); retrying in %.1fs", self._plural, error, backoff
                )
                if status == 403 and self._optional and not self.synced.is_set():
                    self._loop.call_soon_threadsafe(self._replace, {})
                version = None
                # Back-off after an API error (not a wait for an event): bounded, doubling.
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _stream(self, version: str) -> str:
        """Follow the watch from ``version``; return the last version seen.

        The server ends the stream after ``WATCH_TIMEOUT_SECONDS`` (the caller renews it
        from the last version); an ERROR event (e.g. 410 Gone) becomes an ApiException
        with the event's code, handled by :meth:`_run`.
        """
        response = self._list_call(
            *self._list_args,
            field_selector=self._selector,
            resource_version=version,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            allow_watch_bookmarks=True,
            watch=True,
        )
        self._response = response
        try:
            for line in _lines(response.stream()):
                event = json.loads(line)
                kind, body = event["type"], event["object"]
                if kind == "ERROR":
                    raise ApiException(status=body.get("code"), reason=body.get("message"))
                version = body["metadata"]["resourceVersion"]
                if kind != "BOOKMARK":
                    self._hand_over(kind, body)
                if self._stopping.is_set():
                    break
        finally:
            self._response = None
            response.close()
        return version

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


def without_managed_fields(body: Body) -> Body:
    """``body`` without ``metadata.managedFields``, which the agent never reads: each field
    manager's record of the fields it owns is often larger than the rest of a MeshAgent,
    and the cache holds every member (client-go's informers drop them the same way)."""
    body.get("metadata", {}).pop("managedFields", None)
    return body


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The non-empty lines of a byte stream (one watch event each)."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from (line for line in complete if line.strip())
