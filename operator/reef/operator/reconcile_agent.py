"""Settle one MeshAgent: finalizer on, an address in status, or a reason why not.

Order of writes: finalizer, then the ledger (through the network's batcher), then
``status.addresses``. A crash between ledger and status leaves an entry whose owner has
no status; the next reconcile asks the batcher again, which returns the same entry
(allocation is idempotent per uid) - adoption, never a second address.
"""

import asyncio
import logging
import time
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

from pydantic import ValidationError

from reef.api import names
from reef.api.conditions import CONDITION_FALSE
from reef.api.models import MeshAgent, parse_mesh_agent
from reef.ipam import AllocationRequest, AllocationResult, IPAddress, Outcome
from reef.observability import metrics
from reef.observability.events import EventType, Reason
from reef.operator.agent_writes import (
    ALLOCATED,
    AllocatedStatus,
    WriteOutcome,
    set_finalizer,
    write_allocated_condition,
    write_allocation,
)
from reef.operator.context import NetworkHandle, OperatorContext

log = logging.getLogger(__name__)

PENDING = "Pending"


def read_agent(body: dict[str, Any]) -> MeshAgent | None:
    """The MeshAgent in ``body``, parsed once where it enters (a watch event, a LIST, a
    fresh read); None, logged, when it is unreadable."""
    try:
        return parse_mesh_agent(body)
    except ValidationError as error:
        log.error("MeshAgent %s is unreadable: %s", body["metadata"].get("name"), error)
        return None


async def reconcile_agent(ctx: OperatorContext, agent: MeshAgent, body: dict[str, Any]) -> None:
    """Settle one MeshAgent (``agent`` is ``body`` parsed; writes start from ``body``);
    a reconcile of the same object already running wins.

    Watch events, the retry after a cool-down and the repair pass can all ask at once;
    one at a time per uid keeps the writes (and the metrics) single. A request that is
    dropped here is covered by the running one or, failing that, by the next repair.
    """
    uid = agent.uid
    if uid in ctx.reconciling:
        return
    ctx.reconciling.add(uid)
    try:
        await _reconcile(ctx, agent, body)
    finally:
        ctx.reconciling.discard(uid)


async def _reconcile(ctx: OperatorContext, agent: MeshAgent, body: dict[str, Any]) -> None:
    handle = ctx.networks.get(agent.spec.network)
    if agent.metadata.deletion_timestamp is not None:
        await _finish_deletion(ctx, handle, agent, body)
        return
    if handle is not None:
        handle.ready[agent.uid] = _is_ready(agent)
        handle.status.touch()
    if agent.status.addresses:
        return
    if names.RELEASE_FINALIZER not in agent.metadata.finalizers:
        updated = await set_finalizer(ctx.kube, body, present=True)
        if updated is None:
            return
        body = updated
    if handle is None:
        await _refuse(
            ctx,
            body,
            PENDING,
            f"MeshNetwork {agent.spec.network!r} does not exist yet; create it (kubectl get mn)"
            " and this MeshAgent gets its address right away",
            Reason.NETWORK_NOT_FOUND,
        )
        return
    requested = _requested(agent)
    if isinstance(requested, str):
        await _refuse(
            ctx,
            body,
            Outcome.REQUESTED_ADDRESS_UNAVAILABLE,
            requested,
            Reason.REQUESTED_ADDRESS_UNAVAILABLE,
        )
        return
    await _allocate(ctx, handle, agent, body, requested)


async def _allocate(
    ctx: OperatorContext,
    handle: NetworkHandle,
    agent: MeshAgent,
    body: dict[str, Any],
    requested: tuple[IPAddress, ...],
) -> None:
    started = time.monotonic()
    adopted = bool(handle.allocator.holds(agent.uid))
    result = await handle.allocator.allocate(AllocationRequest(agent.uid, agent.name, requested))
    handle.status.touch()
    network = handle.allocator.name
    if result.outcome is not Outcome.ALLOCATED:
        metrics.ALLOCATION_FAILURES.labels(network, str(result.outcome)).inc()
        reason = (
            Reason.POOL_EXHAUSTED
            if result.outcome is Outcome.POOL_EXHAUSTED
            else Reason.REQUESTED_ADDRESS_UNAVAILABLE
        )
        message = _refusal_message(result)
        if result.outcome is Outcome.POOL_EXHAUSTED:
            message += (
                "; delete MeshAgents that are no longer needed (an address returns to the pool"
                f" {handle.network.spec.reuse_cooldown} after its release) or use a MeshNetwork"
                " with a larger pool. This agent gets an address as soon as one is free."
            )
        await _refuse(ctx, body, str(result.outcome), message, reason)
        return
    addresses = tuple(str(address) for address in result.addresses)
    message = (
        "address taken over from the ledger (an earlier status write was interrupted)"
        if adopted
        else f"permanent address {', '.join(addresses)} from MeshNetwork {network}"
    )
    outcome, latest = await write_allocation(
        ctx.kube,
        body,
        AllocatedStatus(addresses, ALLOCATED, message, datetime.now(UTC)),
    )
    if outcome is WriteOutcome.HELD_OTHER and latest is not None:
        # Another writer (a second operator) set a different address first; it stands,
        # and what we reserved was never published, so it can go straight back.
        held = set((latest.get("status") or {}).get("addresses") or ())
        extra = [address for address in result.addresses if str(address) not in held]
        await handle.allocator.release(agent.uid, extra)
        return
    if outcome is WriteOutcome.GONE:
        await handle.allocator.release(agent.uid)
        return
    if outcome is not WriteOutcome.WRITTEN:
        return  # a concurrent reconcile of the same agent wrote it (and counted it)
    metrics.ALLOCATIONS.labels(network, "adopted" if adopted else "new").inc()
    metrics.ALLOCATION_LATENCY.labels(network).observe(time.monotonic() - started)
    if adopted:
        await ctx.recorder.record(
            body, EventType.NORMAL, Reason.ADDRESS_ADOPTED, f"{message}: {', '.join(addresses)}"
        )


async def retry_unsettled(ctx: OperatorContext, network: str) -> None:
    """Reconcile every MeshAgent of ``network`` still without an address or waiting for
    its release (all at once, so they share ledger writes). The backstop for requests
    that failed, were refused, or were dropped while another reconcile ran."""
    bodies = await ctx.kube.list_agents(network)
    waiting = [
        (agent, body)
        for body in bodies
        if not (body.get("status") or {}).get("addresses")
        or body["metadata"].get("deletionTimestamp")
        if (agent := read_agent(body)) is not None
    ]
    await asyncio.gather(*(reconcile_agent(ctx, agent, body) for agent, body in waiting))


def schedule_retry_after_cooldown(ctx: OperatorContext, handle: NetworkHandle) -> None:
    """A released address becomes reusable when its cool-down ends: retry then (one
    LIST for every release whose cool-down ends in the same slot, not one per release)."""
    delay = handle.network.spec.reuse_cooldown_delta.total_seconds()
    network = handle.allocator.name
    handle.retries.schedule(
        delay, lambda: ctx.spawn(retry_unsettled(ctx, network), f"reef-retry-{network}")
    )


async def _finish_deletion(
    ctx: OperatorContext, handle: NetworkHandle | None, agent: MeshAgent, body: dict[str, Any]
) -> None:
    if names.RELEASE_FINALIZER not in agent.metadata.finalizers:
        return
    if handle is not None:
        handle.ready.pop(agent.uid, None)
        await handle.allocator.release(agent.uid)
        metrics.RELEASES.labels(handle.allocator.name).inc()
        handle.status.touch()
        schedule_retry_after_cooldown(ctx, handle)
        if agent.status.addresses:
            await ctx.recorder.record(
                body,
                EventType.NORMAL,
                Reason.ADDRESS_RELEASED,
                f"{', '.join(agent.status.addresses)} released; kept for the name"
                f" {agent.name!r} for {handle.network.spec.retention} and from everyone"
                f" else for at least {handle.network.spec.reuse_cooldown}",
            )
    await set_finalizer(ctx.kube, body, present=False)


async def _refuse(
    ctx: OperatorContext, body: dict[str, Any], reason: str, message: str, event: Reason
) -> None:
    written = await write_allocated_condition(
        ctx.kube, body, status=CONDITION_FALSE, reason=reason, message=message
    )
    if written:  # one Event per new refusal, not one per re-delivered watch event
        await ctx.recorder.record(body, EventType.WARNING, event, message)


def _requested(agent: MeshAgent) -> tuple[IPAddress, ...] | str:
    """Parsed spec.requestedAddresses, or why they cannot be read."""
    addresses = []
    for text in agent.spec.requested_addresses:
        try:
            addresses.append(ip_address(text))
        except ValueError:
            return f"requested address {text!r} is not an IP address; fix spec.requestedAddresses"
    return tuple(addresses)


def _refusal_message(result: AllocationResult) -> str:
    if result.refusals:
        return "; ".join(
            f"{refusal.address}: {refusal.reason} ({refusal.message})"
            for refusal in result.refusals
        )
    return result.message or str(result.outcome)


def _is_ready(agent: MeshAgent) -> bool:
    condition = agent.condition("Ready")
    return condition is not None and condition.status == "True"
