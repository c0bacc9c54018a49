"""The agent's informer keeps objects without ``metadata.managedFields``, whether they
came by the list or by the watch (glue over a fake API; the wire is tested in
tests/agent/test_http_transport.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
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
