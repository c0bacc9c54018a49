"""run_coalesced, the loop behind the network status writer and the cluster-range
publisher: requests during a run cost one more run, and a failed run does not end it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from reef.operator.coalesced import run_coalesced

TIMEOUT = 5.0  # a deadline, not a wait: every step is signalled by an event


def test_requests_during_a_run_coalesce_into_one_more_and_a_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> int:
        wanted = asyncio.Event()
        first_started, release_first, second_done = (asyncio.Event() for _ in range(3))
        runs = 0

        async def work() -> None:
            nonlocal runs
            runs += 1
            if runs == 1:
                first_started.set()
                await release_first.wait()
                raise RuntimeError("the API said no")
            second_done.set()

        log = logging.getLogger("test.coalesced")
        worker = asyncio.create_task(run_coalesced(wanted, work, log=log, failure="it failed"))
        try:
            wanted.set()
            await first_started.wait()
            for _ in range(3):  # three requests while the first run is in flight
                wanted.set()
            release_first.set()
            await second_done.wait()
            # The second run consumed every request made before it: nothing is pending.
            assert not wanted.is_set()
            return runs
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    with caplog.at_level(logging.ERROR, logger="test.coalesced"):
        runs = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert runs == 2
    failures = [r for r in caplog.records if r.getMessage() == "it failed"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
