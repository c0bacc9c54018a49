"""Two operators' batchers on one ledger: they contend, and no address goes out twice.

The contention is made, not hoped for: both batchers read the ledger at the same
resourceVersion before either writes, so whichever writes second plans on a stale copy
and must lose its compare-and-swap, in every interleaving of their tasks. A second round
then finds the first round's winner behind the loser's write, so each of them loses at
least once. (tests/allocation/test_crash_safety.py runs two real operator processes
against a real API server for the same no-duplicate claim.)
"""

from __future__ import annotations

import asyncio

from reef.ipam import AllocationRequest, AllocationResult, Ledger, Outcome
from tests.unit.operator_fakes import FakeKube, FakeSleep, OperatorClient, allocator

TIMEOUT = 5.0  # a deadline, not a wait: every fake answers at once


async def _noop(ledger: Ledger) -> None:
    return None


def _request(uid: str) -> AllocationRequest:
    return AllocationRequest(uid, f"node-{uid}", ())


async def _scenario(
    first: OperatorClient, second: OperatorClient
) -> tuple[list[AllocationResult], list[int]]:
    batchers = [allocator(first, FakeSleep()), allocator(second, FakeSleep())]
    for batcher in batchers:
        batcher.start()
    try:
        results = [await batchers[0].allocate(_request("seed"))]  # the shard now exists
        await batchers[1].exclusive(_noop)  # reads the shard at the version just written
        lost_before_rounds = [first.conflicts, second.conflicts]
        for round_ in ("r1", "r2"):
            results += await asyncio.gather(
                batchers[0].allocate(_request(f"{round_}-a")),
                batchers[1].allocate(_request(f"{round_}-b")),
            )
        return results, lost_before_rounds
    finally:
        for batcher in batchers:
            await batcher.stop()


def test_two_batchers_on_one_ledger_each_lose_a_race_and_never_share_an_address() -> None:
    server = FakeKube()
    first, second = OperatorClient(server), OperatorClient(server)
    results, lost_before_rounds = asyncio.run(asyncio.wait_for(_scenario(first, second), TIMEOUT))

    assert all(result.outcome is Outcome.ALLOCATED for result in results)
    handed_out = [result.addresses for result in results]
    assert len(set(handed_out)) == len(handed_out), f"one address twice: {handed_out}"
    assert lost_before_rounds == [0, 0]
    assert first.conflicts >= 1, "the first operator never lost a compare-and-swap"
    assert second.conflicts >= 1, "the second operator never lost a compare-and-swap"
    stored = server.ledger()
    for result in results:
        assert stored.addresses_of(result.request.uid) == result.addresses
