"""Writing the agent's part of the MeshAgent status, rarely and never over others' work.

Only ``status.dataplane`` and the conditions ``Configured``, ``PeersHealthy`` and
``Ready`` are written, by server-side apply under the agent's field manager: the API
server merges the conditions list by ``type``, so the operator's ``Allocated`` condition
is neither sent nor overwritten, and no read-modify-write (nor its 409 retries) is needed.

Rate limit (thousands of nodes must not flood the API): a write is *urgent* when a
condition's status flips or the first report is missing — it goes out at once. Other
differences (peer counts, messages) are coalesced; the agent loop wakes at
:attr:`StatusReporter.due_at` and reports again. A status equal to the one on the object is
never written.

How long they are coalesced grows with the mesh (:func:`coalescing_interval`): a member
joining changes every node's peer count, so with a fixed interval a join cost N writes
within that interval, each delivered to every watcher — 40 000 watch events per join at
200 members (docs/benchmarks.md). Up to :data:`SMALL_MESH` peers the interval is
``REEF_STATUS_MIN_INTERVAL_SECONDS``; beyond, it grows in proportion, so the whole mesh's
coalesced writes stay at ``SMALL_MESH / min_interval`` per second (5/s by default), up to
:data:`MAX_COALESCED_SECONDS` (the kubelet's own node status report period). An interval
alone would not do it: after a quiet spell every node's first change is due at once, so
a join still meant N writes in the same second. In a larger mesh a node's first
non-urgent change therefore waits until its own phase of the interval (from a hash of
its name, so the nodes spread evenly over it and each keeps its place).
"""

from __future__ import annotations

import logging
import time
import zlib
from datetime import UTC, datetime
from typing import Any

from reef.agent.health import ConditionValue, Observation, conditions, dataplane, decide_write
from reef.api import names
from reef.api.conditions import set_condition
from reef.kube.client import Kube
from reef.kube.writes import NOT_FOUND, ApiException

log = logging.getLogger(__name__)

Body = dict[str, Any]


SMALL_MESH = 50
MAX_COALESCED_SECONDS = 300.0


def coalescing_interval(min_interval: float, peers: int) -> float:
    """Least seconds between two non-urgent status writes of a node with ``peers`` peers."""
    scaled = min(min_interval * peers / SMALL_MESH, MAX_COALESCED_SECONDS)
    return max(min_interval, scaled)


def phase_of(name: str) -> float:
    """Where in any interval this node's coalesced writes fall, in [0, 1)."""
    return zlib.crc32(name.encode()) / 2**32


class StatusReporter:
    def __init__(self, kube: Kube, name: str, min_interval: float) -> None:
        self._kube = kube
        self._name = name
        self._min_interval = min_interval
        self._phase = phase_of(name)
        self._last_write = float("-inf")
        self._pending: Observation | None = None
        self._due = float("-inf")

    @property
    def due_at(self) -> float | None:
        """Monotonic time at which a coalesced write may go out; None if none waits."""
        if self._pending is None:
            return None
        return self._due

    async def report(
        self, body: Body, observation: Observation, *, now: bool = False
    ) -> Body | None:
        """Write now if needed and allowed (``now``: whatever the rate limit says, e.g. the
        last words before the agent exits); otherwise remember that a write is due."""
        wanted = conditions(observation)
        block = dataplane(observation, datetime.now(UTC))
        generation = int(body["metadata"].get("generation") or 0)
        decision = decide_write(body.get("status") or {}, wanted, block, generation)
        if not decision.needed:
            self._pending = None
            return None
        if not (decision.urgent or now):
            clock = time.monotonic()
            interval = coalescing_interval(self._min_interval, observation.total)
            if self._pending is None:  # the first change since the last write
                spread = self._phase * interval if observation.total > SMALL_MESH else 0.0
                self._due = clock + spread
            self._due = max(self._due, self._last_write + interval)
            if clock < self._due:
                self._pending = observation
                return None
        return await self._write(body, wanted, block)

    async def _write(
        self, body: Body, wanted: tuple[ConditionValue, ...], block: dict[str, Any]
    ) -> Body | None:
        generation = int(body["metadata"].get("generation") or 0)
        existing = list((body.get("status") or {}).get("conditions") or [])
        for value in wanted:
            # On top of what is there, so lastTransitionTime changes only on a flip.
            existing = set_condition(
                existing,
                type_=value.type,
                status=value.status,
                reason=value.reason,
                message=value.message,
                observed_generation=generation,
            )
        ours = {value.type for value in wanted}
        status = {"dataplane": block, "conditions": [c for c in existing if c["type"] in ours]}
        try:
            written: Body = await self._kube.apply_status(
                names.MESH_AGENT_PLURAL, self._name, status, manager=names.AGENT_FIELD_MANAGER
            )
        except ApiException as error:
            if error.status == NOT_FOUND:
                return None
            raise
        self._last_write = time.monotonic()
        self._pending = None
        return written
