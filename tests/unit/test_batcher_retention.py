"""Retention through the batcher: a returning name beats new identities in its batch.

In a full pool (nothing fresh, cool-down 0 s) a new identity is given the released
address free the longest. The returning name's address is neither the oldest nor the
newest released one, so the test fails both if retention is ignored (the name would
get the oldest) and if new identities are served before it (one of them would take
the retained address). The fake API answers at once and the three requests are one
batch, checked by counting the ledger writes, so no timing decides.
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from typing import Any

from reef.api.models import MeshNetworkSpec
from reef.ipam import AllocationRequest, AllocationResult, Outcome
from tests.unit.operator_fakes import FakeKube, FakeSleep, allocator

#: Six usable addresses, reusable by anyone at once, kept for their name for an hour.
FULL_POOL = MeshNetworkSpec(cidrs=("10.77.0.0/29",), reuse_cooldown="0s", retention="1h")
TIMEOUT = 5.0  # a deadline, not a wait: every fake answers at once


def _request(uid: str, name: str) -> AllocationRequest:
    return AllocationRequest(uid, name, ())


async def _scenario(kube: FakeKube) -> tuple[list[AllocationResult], list[AllocationResult], int]:
    batcher = allocator(kube, FakeSleep())
    batcher.start()
    try:
        held = await asyncio.gather(
            *(batcher.allocate(_request(f"u{i}", f"node-{i}")) for i in range(1, 7))
        )
        # Released one batch after another, oldest first: node-1 (.1), node-2 (.2),
        # node-3 (.3). Equal timestamps would order them by address: the same order.
        for uid in ("u1", "u2", "u3"):
            await batcher.release(uid)
        writes = kube.calls["replace_config_map"]
        # gather starts the three callers before the batch loop runs again, so they
        # queue into one batch (asserted below through the write count).
        again = await asyncio.gather(
            batcher.allocate(_request("new-a", "node-new-a")),
            batcher.allocate(_request("new-b", "node-new-b")),
            batcher.allocate(_request("u2-recreated", "node-2")),
        )
        return held, list(again), kube.calls["replace_config_map"] - writes
    finally:
        await batcher.stop()


def _run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))


def test_a_returning_name_gets_its_retained_address_before_new_identities_in_its_batch() -> None:
    kube = FakeKube(FULL_POOL)
    held, (new_a, new_b, returning), writes = _run(_scenario(kube))

    assert [result.addresses for result in held] == [
        (ip_address(f"10.77.0.{i}"),) for i in range(1, 7)
    ], "setup: the six addresses in order, so the release order is the address order"
    assert writes == 1, "the three requests were not one batch"
    assert all(r.outcome is Outcome.ALLOCATED for r in (new_a, new_b, returning))
    assert returning.addresses == (ip_address("10.77.0.2"),)
    assert {new_a.addresses, new_b.addresses} == {
        (ip_address("10.77.0.1"),),
        (ip_address("10.77.0.3"),),
    }
    assert kube.ledger().addresses_of("u2-recreated") == returning.addresses
