"""In-memory stand-ins for the operator's API client, for batcher and repair unit tests.

FakeKube keeps ConfigMaps with resourceVersions (so compare-and-swap behaves as on the
API server) and lets a test queue failures per call; FakeSleep records back-off delays
instead of waiting, so no test spends real time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from reef.api.models import MeshNetworkSpec
from reef.ipam import IPAddress, Ledger, decode_ledger
from reef.operator.ledger_store import SHARD_LABEL
from reef.operator.network_allocator import NetworkAllocator, ReloadReport, policy_of

SPEC = MeshNetworkSpec(cidrs=("10.77.0.0/24",))


class FakeKube:
    def __init__(self, spec: MeshNetworkSpec = SPEC) -> None:
        self.spec = spec
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.agents: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        #: method name -> HTTP statuses to raise on its next calls, in order.
        self.failures: dict[str, list[int]] = {}
        #: replaces refused because they named an old resourceVersion (lost races).
        self.conflicts = 0
        #: called before a replace, so a test can change the world mid-batch.
        self.before_replace: Callable[[], None] | None = None
        self._version = 0

    def _enter(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        queued = self.failures.get(method)
        if queued:
            raise ApiException(status=queued.pop(0))

    def _stored(self, body: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        stored = {
            "metadata": {**body["metadata"], "resourceVersion": str(self._version)},
            "data": dict(body.get("data") or {}),
        }
        self.config_maps[body["metadata"]["name"]] = stored
        return stored

    async def list_config_maps(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self._enter("list_config_maps")
        return list(self.config_maps.values())

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any]:
        self._enter("read_config_map")
        if name not in self.config_maps:
            raise ApiException(status=404)
        return self.config_maps[name]

    async def create_config_map(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._enter("create_config_map")
        if body["metadata"]["name"] in self.config_maps:
            raise ApiException(status=409)
        return self._stored(body)

    async def replace_config_map(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        if self.before_replace is not None:
            self.before_replace()
        self._enter("replace_config_map")
        current = self.config_maps.get(name)
        if current is None:
            raise ApiException(status=404)
        if current["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            self.conflicts += 1
            raise ApiException(status=409)
        return self._stored(body)

    async def list_agents(self, network: str | None = None) -> list[dict[str, Any]]:
        self._enter("list_agents")
        return list(self.agents)

    async def list_agents_as(
        self, reduce: Callable[[dict[str, Any]], Any], network: str | None = None
    ) -> list[Any]:
        bodies = await self.list_agents(network)
        return [kept for body in bodies if (kept := reduce(body)) is not None]

    async def read_agent(self, name: str) -> dict[str, Any] | None:
        self._enter("read_agent")
        return next((a for a in self.agents if a["metadata"]["name"] == name), None)

    def ledger(self) -> Ledger:
        """What the API server holds, decoded as a fresh operator would read it."""
        shards = {
            cm["metadata"]["labels"][SHARD_LABEL]: cm["data"] for cm in self.config_maps.values()
        }
        ledger, problems = decode_ledger(self.spec.networks, shards, policy_of(self.spec))
        assert not problems
        return ledger


class OperatorClient:
    """One operator's connection to a shared FakeKube: the same objects, and its own
    count of lost compare-and-swaps, so a test sees *which* operator lost a race."""

    def __init__(self, server: FakeKube) -> None:
        self.server = server
        self.spec = server.spec
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)

    async def replace_config_map(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return await self.server.replace_config_map(namespace, name, body)
        except ApiException as error:
            if error.status == 409:
                self.conflicts += 1
            raise


def agent(uid: str, name: str, *addresses: IPAddress) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "name": name, "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": {"network": "default"},
        "status": {"addresses": [str(address) for address in addresses]},
    }


class FakeSleep:
    """Records requested delays and returns at once (fake time)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def _no_report(report: ReloadReport) -> None:
    return None


def allocator(
    kube: FakeKube | OperatorClient,
    sleep: FakeSleep,
    on_reload: Callable[[ReloadReport], Awaitable[None]] = _no_report,
) -> NetworkAllocator:
    return NetworkAllocator(
        kube,  # type: ignore[arg-type]  # duck-typed: the methods the allocator calls
        "reef-system",
        "default",
        kube.spec,
        on_reload,
        sleep=sleep,
        jitter=lambda: 1.0,
    )
