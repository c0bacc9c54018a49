"""The agent's informer lists in pages against a real API server: every member arrives,
and the watch goes on from the list's snapshot."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from reef.agent.informer import Informer
from reef.api import names
from reef.kube.client import Kube
from reef.kube.http import connect
from tests.support.mesh import MeshApi
from tests.testbed.clients import KubeTarget


def test_a_list_read_in_pages_holds_every_member_and_the_watch_follows_it(
    kube_target: KubeTarget, mesh: MeshApi, network: str
) -> None:
    members = [f"{network}-m{i}" for i in range(7)]
    for name in members:
        mesh.create_agent(name, network)
    transport = connect(kube_target.kubeconfig, kube_target.context, os.environ)
    assert transport is not None, "the bed's kubeconfig is static"
    kube = Kube(None, 2, transport)
    try:
        asyncio.run(_listed_in_pages_then_watched(kube, mesh, network, members))
    finally:
        kube.close()


async def _listed_in_pages_then_watched(
    kube: Kube, mesh: MeshApi, network: str, members: list[str]
) -> None:
    pages: list[dict[str, Any]] = []
    list_raw = kube.list_raw

    def counting(path: str, **options: Any) -> Any:
        if not options.get("watch"):
            pages.append(options)
        return list_raw(path, **options)

    kube.list_raw = counting  # type: ignore[method-assign]
    changed = asyncio.Event()
    informer = Informer(
        kube,
        names.MESH_AGENT_PLURAL,
        f"spec.network={network}",
        asyncio.get_running_loop(),
        changed.set,
    )
    informer.page_size = 3
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 30)
        assert sorted(informer.objects) == members
        assert [page["limit"] for page in pages] == [3, 3, 3]
        assert pages[0]["_continue"] is None
        assert all(page["_continue"] for page in pages[1:]), "later pages continue the first"
        # Written after the list: the watch starts at the list's resourceVersion.
        mesh.patch_agent(members[4], {"spec": {"endpoint": "192.0.2.4:51820"}})
        async with asyncio.timeout(30):
            while informer.objects[members[4]]["spec"].get("endpoint") != "192.0.2.4:51820":
                changed.clear()
                await changed.wait()
    finally:
        informer.stop()
