"""The per-network batcher: the only code in the operator that changes a network's ledger.

Requests that arrive while a ledger write is in flight queue up and go into the next
write together, so a burst of a thousand new nodes costs a handful of ledger writes,
not a thousand (the batching the ClusterIP allocator left as a TODO). The batch is
whatever accumulated during the previous round-trip, and batches start at most every
:data:`BATCH_INTERVAL` (0.1 s): in a burst of 5000 that halved the ledger writes (each
a whole shard for the API server and etcd) for at most 0.1 s more per allocation.

Safety rests on three rules:

* the whole ledger is read - and every address already in a MeshAgent status is put
  back into it - before the first allocation, and again whenever a shard vanished;
* every shard write is a compare-and-swap; on 409 the shard is re-read and the whole
  batch re-planned, which is idempotent per uid;
* a request's addresses are reported only after every shard it touched is written.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any, TypeVar

from reef.api.models import MeshNetworkSpec, parse_mesh_agent
from reef.ipam import (
    AllocationRequest,
    AllocationResult,
    IPAddress,
    Ledger,
    LiveAgent,
    Policy,
    Problem,
    RepairPlan,
    allocate,
    decode_ledger,
    plan_repair,
    recreate_entries,
)
from reef.kube.client import Kube
from reef.observability import metrics
from reef.operator.ledger_store import LedgerStore, ShardVanishedError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The least time between the starts of two ledger batches, in seconds.
BATCH_INTERVAL = 0.1
#: Attempts at one batch before its requests fail (kopf events and repair retry later).
MAX_ATTEMPTS = 10
#: Failed full reads (API errors) in a row before a reload gives up and raises.
RELOAD_ATTEMPTS = 6
#: Back-off after the first failure, and its ceiling (seconds, before jitter).
BACKOFF_BASE = 0.1
BACKOFF_CAP = 5.0
RELOAD_BACKOFF_CAP = 2.0


def backoff_delay(attempt: int, jitter: float, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): doubling, capped, scaled by
    ``jitter`` (0.5-1.0) so operators retrying against one API server spread out."""
    return float(min(cap, BACKOFF_BASE * 2.0**attempt) * jitter)


def _jitter() -> float:
    return float(random.uniform(0.5, 1.0))


@dataclass
class _Allocation:
    request: AllocationRequest
    future: "asyncio.Future[AllocationResult]"


@dataclass
class _Release:
    uid: str
    addresses: tuple[IPAddress, ...]  # empty: every address of the uid
    future: "asyncio.Future[None]"


@dataclass
class ReloadReport:
    """What a full ledger read found: unreadable entries and entries rebuilt from statuses."""

    problems: list[Problem] = field(default_factory=list)
    plan: RepairPlan = field(default_factory=RepairPlan)


def _futures(
    allocations: list[_Allocation], releases: list[_Release]
) -> "list[asyncio.Future[Any]]":
    return [job.future for job in allocations] + [job.future for job in releases]


def _fail(futures: "list[asyncio.Future[Any]]", error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)


class _RetryBatchError(Exception):
    """Some shard writes lost a compare-and-swap; re-plan against the fresh shards."""


def policy_of(spec: MeshNetworkSpec) -> Policy:
    return Policy(reuse_cooldown=spec.reuse_cooldown_delta, retention=spec.retention_delta)


def live_agent(body: dict[str, Any]) -> LiveAgent | None:
    """A MeshAgent as repair planning sees it; None for one being deleted."""
    agent = parse_mesh_agent(body)
    if agent.metadata.deletion_timestamp is not None:
        return None
    addresses = []
    for text in agent.status.addresses:
        try:
            addresses.append(ip_address(text))
        except ValueError:
            log.warning("MeshAgent %s has an unparseable status address %r", agent.name, text)
    created = agent.metadata.creation_timestamp or datetime.now(UTC)
    return LiveAgent(agent.uid, agent.name, tuple(addresses), created)


class NetworkAllocator:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        spec: MeshNetworkSpec,
        on_reload: Callable[[ReloadReport], Awaitable[None]],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = _jitter,
        batch_interval: float = BATCH_INTERVAL,
    ) -> None:
        self.name = name
        self.batch_interval = batch_interval
        self.spec = spec
        self.store = LedgerStore(kube, namespace, name)
        self._kube = kube
        self._on_reload = on_reload
        self._ledger: Ledger | None = None
        self._stale = True
        self._lock = asyncio.Lock()
        self._allocations: list[_Allocation] = []
        self._releases: list[_Release] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.problems: list[Problem] = []
        # Injectable so unit tests run the back-off on fake time.
        self._sleep = sleep
        self._jitter = jitter

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"reef-allocator-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for future in _futures(self._allocations, self._releases):
            if not future.done():
                future.cancel()

    def update_spec(self, spec: MeshNetworkSpec) -> None:
        """Pick up new cool-down/retention; cidrs are immutable (enforced by the CRD)."""
        self.spec = spec
        if self._ledger is not None:
            self._ledger.policy = policy_of(spec)

    # -- requests -------------------------------------------------------------------

    async def allocate(self, request: AllocationRequest) -> AllocationResult:
        future: asyncio.Future[AllocationResult] = asyncio.get_running_loop().create_future()
        self._allocations.append(_Allocation(request, future))
        self._wake.set()
        return await future

    async def release(self, uid: str, addresses: Iterable[IPAddress] = ()) -> None:
        """Mark the uid's addresses (or just ``addresses``) released; idempotent."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._releases.append(_Release(uid, tuple(addresses), future))
        self._wake.set()
        await future

    def holds(self, uid: str) -> tuple[IPAddress, ...]:
        """Addresses the in-memory ledger gives ``uid`` (a hint; the batch decides)."""
        return () if self._ledger is None else self._ledger.addresses_of(uid)

    async def exclusive(self, work: Callable[[Ledger], Awaitable[T]]) -> T:
        """Run ``work`` on the loaded ledger with no batch in flight (repair uses this)."""
        async with self._lock:
            ledger = await self._loaded()
            return await work(ledger)

    async def reread(self, work: Callable[[Ledger, RepairPlan], Awaitable[T]]) -> T:
        """Re-read the whole ledger and every status (restoring missing entries), then run
        ``work`` with that read's repair plan, no batch in flight (the repair pass)."""
        async with self._lock:
            self._stale = True
            plan = await self._reload_fresh()
            return await work(await self._loaded(), plan)

    async def commit(self, shards: Iterable[str]) -> None:
        """Write shards changed inside ``exclusive``; a lost race marks the ledger stale."""
        try:
            await self._write(set(shards))
        except (_RetryBatchError, ShardVanishedError):
            self._stale = True
            raise

    # -- the batch loop ---------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started = -self.batch_interval
        while True:
            await self._wake.wait()
            # Pacing, not waiting for something: requests that arrive meanwhile join
            # this batch, so a burst costs fewer, fuller ledger writes (each one is a
            # whole shard of up to 1024 entries for the API server and etcd).
            pause = started + self.batch_interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            started = loop.time()
            self._wake.clear()
            allocations, self._allocations = self._allocations, []
            releases, self._releases = self._releases, []
            if not allocations and not releases:
                continue
            async with self._lock:
                try:
                    await self._process(allocations, releases)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    # A bug must not kill the only writer of the ledger silently, nor
                    # leave this batch's callers waiting forever: fail them, mark the
                    # ledger stale (its in-memory state is unknown) and take the next batch.
                    log.exception("ledger batch of network %s crashed", self.name)
                    self._stale = True
                    _fail(_futures(allocations, releases), error)

    async def _process(self, allocations: list[_Allocation], releases: list[_Release]) -> None:
        metrics.BATCH_SIZE.labels(self.name).observe(len(allocations) + len(releases))
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                ledger = await self._loaded()
                now = datetime.now(UTC)
                changed: set[str] = set()
                for release in releases:
                    if release.addresses:
                        for address in release.addresses:
                            changed |= ledger.release_address(address, now)
                    else:
                        changed |= ledger.release(release.uid, now)
                batch = allocate(ledger, [job.request for job in allocations], now)
                changed |= batch.changed_shards
                await self._write(changed)
            except asyncio.CancelledError:
                raise
            except _RetryBatchError:
                metrics.LEDGER_WRITE_RETRIES.labels(self.name).inc()
                continue
            except ShardVanishedError as vanished:
                log.warning("ledger shard %s vanished; rebuilding from statuses", vanished)
                self._stale = True
                continue
            except Exception:
                # Outcome unknown (timeout, 5xx): forget local changes, re-read everything.
                log.exception("ledger batch of network %s failed (attempt %d)", self.name, attempt)
                self._stale = True
                # Back-off with jitter so a struggling API server is not hammered.
                await self._sleep(backoff_delay(attempt, self._jitter()))
                continue
            # A caller that gave up (cancelled) has a done future; the others still wait.
            for release in releases:
                if not release.future.done():
                    release.future.set_result(None)
            for job, result in zip(allocations, batch.results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
            return
        _fail(
            _futures(allocations, releases),
            RuntimeError(f"ledger of network {self.name} could not be written"),
        )

    async def _write(self, shards: set[str]) -> None:
        """CAS-write every changed shard concurrently; re-read the ones that lost."""
        if not shards or self._ledger is None:
            return
        ledger = self._ledger
        ordered = sorted(shards)
        outcomes = await asyncio.gather(
            *(self.store.write(shard, ledger.encode_shard(shard)) for shard in ordered),
            return_exceptions=True,
        )
        lost = []
        for shard, outcome in zip(ordered, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            metrics.LEDGER_WRITES.labels(self.name, "written" if outcome else "conflict").inc()
            if not outcome:
                lost.append(shard)
        if lost:
            for shard in lost:
                self.problems += ledger.load_shard(shard, await self.store.load_one(shard))
            raise _RetryBatchError(lost)

    # -- loading ----------------------------------------------------------------------

    async def _loaded(self) -> Ledger:
        while self._stale or self._ledger is None:
            await self._reload_fresh()
        return self._ledger

    async def _reload_fresh(self) -> RepairPlan:
        """Reload until one read sticks.

        A lost race (someone wrote in between) is re-read at once, as the compare-and-swap
        protocol expects; an API error waits a growing, capped back-off first, and after
        RELOAD_ATTEMPTS errors in a row the last one is raised to the caller.
        """
        errors = 0
        while True:
            try:
                plan = await self._reload()
            except asyncio.CancelledError:
                raise
            except Exception:
                errors += 1
                if errors >= RELOAD_ATTEMPTS:
                    raise
                log.warning(
                    "reading the ledger of network %s failed (%d in a row); backing off",
                    self.name,
                    errors,
                    exc_info=True,
                )
                await self._sleep(backoff_delay(errors, self._jitter(), RELOAD_BACKOFF_CAP))
                continue
            if plan is not None:
                return plan

    async def _reload(self) -> RepairPlan | None:
        """Read the whole ledger and put every status address back into it.

        Returns the repair plan of that read, or None when a write lost a race and the
        ledger is still stale.
        """
        shards = await self.store.load_all()
        ledger, problems = decode_ledger(self.spec.networks, shards, policy_of(self.spec))
        agents = await self._kube.list_agents_as(live_agent, self.name)
        plan = plan_repair(ledger, agents)
        now = datetime.now(UTC)
        changed = set(recreate_entries(ledger, plan, now))
        self._ledger = ledger
        self.problems = problems
        try:
            await self._write(changed)
        except (_RetryBatchError, ShardVanishedError):
            return None  # still stale: the caller loops and reads again
        self._stale = False
        if problems or plan.recreate:
            await self._on_reload(ReloadReport(problems, plan))
        return plan
