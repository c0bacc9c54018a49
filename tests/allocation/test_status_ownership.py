"""Operator and agent share one MeshAgent status and never overwrite each other's part.

Both writers are driven directly against the real API server, each from a body that does
not yet show the other's latest write (what happens when they race): the operator's
``Allocated`` condition and addresses and the agent's ``dataplane`` and conditions all
survive, because each is applied under its own field manager (api/names.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient

from reef.agent.health import Observation
from reef.agent.status import StatusReporter
from reef.api import names
from reef.kube.client import Kube
from reef.operator.agent_writes import (
    AllocatedStatus,
    WriteOutcome,
    write_allocated_condition,
    write_allocation,
)
from tests.support.mesh import MeshApi

CIDR = "100.64.0.0/24"
ADDRESS = "100.64.0.7"


def _observation(*, configured: bool) -> Observation:
    return Observation(
        backend="userspace",
        backend_reason="test",
        interface="reef0",
        configured_addresses=(ADDRESS,) if configured else (),
        listen_port=51820,
        allocated=True,
        configured=configured,
        configure_error=None if configured else "device missing",
        total=0,
        healthy=0,
        unhealthy=(),
        skipped=(),
    )


def _conditions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


def _managers(body: dict[str, Any]) -> set[str]:
    return {entry["manager"] for entry in body["metadata"].get("managedFields") or []}


async def _race(kube: Kube, name: str) -> dict[str, Any]:
    created = await kube.read_agent(name)
    assert created is not None
    reporter = StatusReporter(kube, name, min_interval=0)

    # The agent reports before the operator's allocation, from the body it read first.
    assert await reporter.report(created, _observation(configured=False)) is not None
    # The operator allocates from that same stale body (its CAS re-reads on 409).
    status = AllocatedStatus((ADDRESS,), "Allocated", "allocated from the pool", datetime.now(UTC))
    outcome, allocated = await write_allocation(kube, created, status)
    assert outcome is WriteOutcome.WRITTEN
    assert allocated is not None
    # The agent flips Configured, again from a body without the operator's write.
    assert await reporter.report(created, _observation(configured=True)) is not None
    # And the operator rewrites its condition from a body without the agent's flip.
    assert await write_allocated_condition(
        kube, allocated, status="True", reason="Allocated", message="still allocated"
    )
    final = await kube.read_agent(name)
    assert final is not None
    return final


def test_operator_and_agent_conditions_on_one_meshagent_never_overwrite_each_other(
    mesh: MeshApi, kube_api: ApiClient, network: str
) -> None:
    mesh.create_network(network, [CIDR])
    name = f"{network}-shared"
    mesh.create_agent(name, network)

    final = asyncio.run(_race(Kube(kube_api, workers=2), name))

    conditions = _conditions(final)
    assert set(conditions) == {"Allocated", "Configured", "PeersHealthy", "Ready"}
    assert conditions["Allocated"]["message"] == "still allocated"
    assert conditions["Configured"]["status"] == "True"
    assert final["status"]["addresses"] == [ADDRESS]
    assert final["status"]["dataplane"]["configuredAddresses"] == [ADDRESS]
    assert {names.OPERATOR_FIELD_MANAGER, names.AGENT_FIELD_MANAGER} <= _managers(final)
