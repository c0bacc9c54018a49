"""List, then watch from the list's version, in a thread of its own: the one loop behind
the agent's informers (reef.agent.informer) and the operator's MeshAgent watch
(reef.operator.agent_watch).

The watch is a blocking stream of JSON lines (read here, not through the official
client's ``Watch``, which builds an ``ApiClient`` of its own: reef.kube.http). After a
"410 Gone" (the resourceVersion expired) or a broken stream it lists again, so whoever
consumes it converges; a back-off after errors keeps a dead API server from being
hammered. A subclass says what happens to each listed object and each event, on this
thread; it hands the result to its asyncio loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from reef.kube.client import (
    LIST_PAGE_SIZE,
    METADATA_ONLY,
    METADATA_ONLY_LIST,
    Kube,
    custom_path,
)
from reef.kube.writes import ApiException

log = logging.getLogger(__name__)

Body = dict[str, Any]
#: Server-side watch timeout: the stream is renewed (cheaply, from the last version).
WATCH_TIMEOUT_SECONDS = 300
_BACKOFF_INITIAL = 0.5
_BACKOFF_MAX = 15.0


class ListWatch:
    """All objects of one plural matching a field selector, listed and then watched.

    Custom objects of the reef API by default; ``plural="nodes"`` follows core Nodes.
    """

    def __init__(
        self,
        kube: Kube,
        plural: str,
        field_selector: str = "",
        *,
        path: str | None = None,
        label_selector: str | None = None,
        metadata_only: bool = False,
    ) -> None:
        """``path``: the collection, for other than reef's objects and Nodes (e.g. the
        ConfigMaps of one namespace); ``metadata_only``: objects and events carry their
        metadata alone (``PartialObjectMetadata``)."""
        if plural == "nodes" and path is None:
            self._list_call: Callable[..., Any] = kube.list_node_raw
            self._list_args: tuple[str, ...] = ()
        else:
            self._list_call = kube.list_raw
            self._list_args = (path or custom_path(plural),)
        #: Options of the list and of the watch calls beyond the field selector.
        options: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        self._list_options, self._watch_options = dict(options), dict(options)
        if metadata_only:
            self._list_options["accept"] = METADATA_ONLY_LIST
            self._watch_options["accept"] = METADATA_ONLY
        self.page_size = LIST_PAGE_SIZE
        self._plural = plural
        self._selector = field_selector or None
        self._stopping = threading.Event()
        #: The open watch response: stop() shuts its socket to end a blocked read.
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{plural}", daemon=True)

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

    # --- what a subclass does with what it reads (all on this thread) ---------------

    def _list_started(self) -> None:
        """A new list begins (the first, or after an expired or broken watch)."""

    def _listed(self, item: Body) -> None:
        """One object of the list, managedFields already dropped."""

    def _list_finished(self) -> None:
        """Every object of the list was handed to :meth:`_listed`."""

    def _hand_over(self, kind: str, body: Body) -> None:
        """One watch event (ADDED, MODIFIED, DELETED), managedFields not yet dropped."""

    def _handed_over(self) -> None:
        """The objects or events read in one piece (a page, what one read of the stream
        brought) were handed over: a subclass that hands them to its loop together does
        it here, one wake-up of the loop instead of one each."""

    def _failed(self, status: int | None) -> None:
        """A list or watch failed with this HTTP status (None: no response); the loop
        backs off and lists again."""

    # --- the loop -------------------------------------------------------------------

    def _list(self) -> str:
        """Hand over every object, read a page at a time; return the list's version.

        All pages come from one snapshot (the ``continue`` token carries it), and each
        page is parsed and handed over before the next is read: a whole list of 5000
        MeshAgents is ~30 MB of JSON and ~90 MB parsed, which the process would keep as
        resident memory long after the list was done.
        """
        self._list_started()
        token: str | None = None
        while True:
            response = self._list_call(
                *self._list_args,
                field_selector=self._selector,
                limit=self.page_size,
                _continue=token,
                _preload_content=False,
                **self._list_options,
            )
            page: Body = json.loads(response.data)
            del response
            for item in page.get("items") or ():
                self._listed(without_managed_fields(item))
            self._handed_over()
            metadata = page["metadata"]
            token = metadata.get("continue") or None
            if token is None:
                self._list_finished()
                return str(metadata["resourceVersion"])

    def _run(self) -> None:
        backoff = _BACKOFF_INITIAL
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._list()
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
                self._failed(status)
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
            **self._watch_options,
        )
        self._response = response
        try:
            for lines in _line_batches(response.stream()):
                for line in lines:
                    event = json.loads(line)
                    kind, body = event["type"], event["object"]
                    if kind == "ERROR":
                        raise ApiException(status=body.get("code"), reason=body.get("message"))
                    version = body["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        self._hand_over(kind, body)
                self._handed_over()
                if self._stopping.is_set():
                    break
        finally:
            self._response = None
            response.close()
        return version


def without_managed_fields(body: Body) -> Body:
    """``body`` without ``metadata.managedFields``, which reef never reads: each field
    manager's record of the fields it owns is often larger than the rest of a MeshAgent,
    and a cache holds every member (client-go's informers drop them the same way)."""
    body.get("metadata", {}).pop("managedFields", None)
    return body


def _line_batches(chunks: Iterator[bytes]) -> Iterator[list[bytes]]:
    """The non-empty lines of a byte stream (one watch event each), as they complete
    with each chunk read."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines = [line for line in complete if line.strip()]
        if lines:
            yield lines


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The non-empty lines of a byte stream, one at a time."""
    for lines in _line_batches(chunks):
        yield from lines
