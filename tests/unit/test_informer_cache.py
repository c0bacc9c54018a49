"""The agent's informer keeps objects without ``metadata.managedFields``, whether they
came by the list or by the watch (glue over a fake API; the wire is tested in
tests/agent/test_http_transport.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from reef.agent.informer import Informer, without_managed_fields

MANAGED = [{"manager": "reef-agent", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]


def _node(name: str, version: str, **labels: str) -> dict[str, Any]:
    metadata = {"name": name, "resourceVersion": version, "managedFields": MANAGED}
    return {"metadata": {**metadata, "labels": labels}, "spec": {}}


class _Response:
    def __init__(self, data: bytes = b"", lines: list[bytes] | None = None) -> None:
        self.data = data
        self._lines = lines or []
        self.closed = threading.Event()

    def stream(self) -> Iterator[bytes]:
        yield from self._lines
        self.closed.wait(30)  # the watch stays open until the informer stops

    def close(self) -> None:
        self.closed.set()


class _FakeKube:
    """One Node listed; its watch brings one modification, then nothing."""

    def __init__(self) -> None:
        self.watches: list[_Response] = []

    def list_node_raw(self, **options: Any) -> _Response:
        if not options.get("watch"):
            listed = {"metadata": {"resourceVersion": "1"}, "items": [_node("n1", "1")]}
            return _Response(json.dumps(listed).encode())
        event = {"type": "MODIFIED", "object": _node("n1", "2", watched="yes")}
        line = json.dumps(event).encode() + b"\n"
        response = _Response(lines=[line] if not self.watches else [])
        self.watches.append(response)
        return response


def test_listed_and_watched_objects_are_kept_without_managed_fields() -> None:
    asyncio.run(_listed_then_watched())


async def _listed_then_watched() -> None:
    kube = _FakeKube()
    changed = asyncio.Event()
    informer = Informer(
        kube,  # type: ignore[arg-type]
        "nodes",
        "metadata.name=n1",
        asyncio.get_running_loop(),
        changed.set,
    )
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        listed = informer.objects["n1"]["metadata"]
        assert "managedFields" not in listed
        async with asyncio.timeout(10):
            while not informer.objects["n1"]["metadata"]["labels"]:
                changed.clear()
                await changed.wait()
        watched = informer.objects["n1"]["metadata"]
        assert watched["labels"] == {"watched": "yes"}
        assert "managedFields" not in watched
    finally:
        informer.stop()
        for response in kube.watches:
            response.close()


def test_without_managed_fields_keeps_everything_else() -> None:
    body = _node("n1", "7", role="hub")
    assert without_managed_fields(body) == {
        "metadata": {"name": "n1", "resourceVersion": "7", "labels": {"role": "hub"}},
        "spec": {},
    }
    assert without_managed_fields({"kind": "Status"}) == {"kind": "Status"}


class _ImmediateLoop:
    """Runs what the informer's thread hands the loop at once, in this thread."""

    def call_soon_threadsafe(self, callback: Callable[..., None], *args: Any) -> None:
        callback(*args)


def _keyed(name: str, version: str, key: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}, "spec": {"key": key}}


def test_a_change_that_is_not_relevant_wakes_no_one_and_is_dropped_unless_refreshed() -> None:
    """Another member's health report (not relevant) is dropped on the informer's thread:
    nothing is made of it, the cache keeps what it had; our own is still cached quietly."""
    woken: list[int] = []
    made: list[str] = []

    def keep(body: dict[str, Any]) -> dict[str, Any]:
        made.append(body["metadata"]["resourceVersion"])
        return body

    informer = Informer(
        _FakeKube(),  # type: ignore[arg-type]
        "nodes",
        "",
        _ImmediateLoop(),  # type: ignore[arg-type]
        lambda: woken.append(1),
        relevant=lambda body: body["spec"]["key"],
        keep=keep,
        refresh_quietly=lambda body: body["metadata"]["name"] == "mine",
    )
    assert informer.take_changes() is None  # from here on, changes are counted
    informer._hand_over("ADDED", _keyed("other", "1", "a"))
    informer._hand_over("MODIFIED", _keyed("other", "2", "a"))
    assert made == ["1"]
    assert len(woken) == 1
    assert informer.objects["other"]["metadata"]["resourceVersion"] == "1"
    assert informer.take_changes() == {"other"}

    informer._hand_over("MODIFIED", _keyed("other", "3", "b"))
    assert informer.objects["other"]["spec"] == {"key": "b"}
    assert len(woken) == 2

    informer._hand_over("ADDED", _keyed("mine", "4", "m"))
    informer._hand_over("MODIFIED", _keyed("mine", "5", "m"))
    assert informer.objects["mine"]["metadata"]["resourceVersion"] == "5"
    assert len(woken) == 3
    assert informer.take_changes() == {"other", "mine"}

    informer._hand_over("DELETED", _keyed("other", "6", "b"))
    assert "other" not in informer.objects
    assert informer.take_changes() == {"other"}
    # created again with the key it had: a new object, so a change
    informer._hand_over("ADDED", _keyed("other", "7", "b"))
    assert informer.take_changes() == {"other"}


def test_after_a_list_a_change_that_is_not_relevant_is_dropped_too() -> None:
    informer = Informer(
        _FakeKube(),  # type: ignore[arg-type]
        "nodes",
        "",
        _ImmediateLoop(),  # type: ignore[arg-type]
        lambda: None,
        relevant=lambda body: json.dumps(body["spec"]),
        refresh_quietly=lambda body: False,
    )
    informer._list()  # the list replaces the cache (at once, with this loop)
    informer.take_changes()
    informer._hand_over("MODIFIED", _node("n1", "2", watched="yes"))  # labels: not relevant
    assert informer.objects["n1"]["metadata"]["resourceVersion"] == "1"
    assert informer.take_changes() == set()
