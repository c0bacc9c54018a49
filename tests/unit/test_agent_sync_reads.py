"""A sync woken by a member's change applies it without reading the device's handshakes;
the health tick reads them (the agent of bench.health_tick: real Agent, planner,
configurator and reporter; in-memory caches and device)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import reef.agent.agent as agent_module
from bench import health_tick
from bench.peer_planning import _body


def _joiner(index: int) -> dict[str, Any]:
    body = _body(index, extras_every=10)
    body["metadata"] |= {"uid": f"uid-{index}", "generation": 1}
    body["spec"] |= {"network": health_tick.NETWORK}
    return body


def test_a_member_change_is_applied_without_a_device_read_and_the_tick_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the harness replaces the agent module's Device; put it back afterwards
    monkeypatch.setattr(agent_module, "Device", getattr(agent_module, "Device"))  # noqa: B009

    async def scenario() -> tuple[int, int, int, int]:
        agent, kube, device = await health_tick._agent(20, health_tick._Device)
        reads = 0
        read = device.read_liveness

        async def counted() -> Any:
            nonlocal reads
            reads += 1
            return await read()

        device.read_liveness = counted  # type: ignore[method-assign]
        writes = device.writes
        joiner = _joiner(21)
        assert kube.cache is not None
        kube.cache.objects[joiner["metadata"]["name"]] = joiner
        kube.cache._changes = {joiner["metadata"]["name"]}
        await agent._sync(force=False, check_health=False)  # woken by the join
        after_event = (device.writes - writes, reads)
        await agent._sync(force=False)  # the health tick
        return (*after_event, reads, len(agent._plan.peers))

    applied, reads_on_event, reads_on_tick, peers = asyncio.run(scenario())
    assert (applied, reads_on_event) == (1, 0)
    assert reads_on_tick == 1
    assert peers == 21
