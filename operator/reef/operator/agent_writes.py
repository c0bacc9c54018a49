"""Writes the operator makes to a MeshAgent: its finalizer and its allocation status.

Every write carries the ``resourceVersion`` it was computed from (a compare-and-swap,
:mod:`reef.kube.writes`), so nothing the operator writes can silently overwrite a change
it has not seen — in particular a status that already holds an address is never replaced
by another one. Status fields are written by server-side apply under the operator's
field manager, so the agent's conditions on the same object are never touched.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from reef.api import names
from reef.api.conditions import (
    CONDITION_FALSE,
    CONDITION_TRUE,
    set_condition,
    utc_timestamp,
)
from reef.kube.client import Kube
from reef.kube.writes import Body, PatchBuilder, compare_and_swap

log = logging.getLogger(__name__)

ALLOCATED = "Allocated"


class WriteOutcome(StrEnum):
    WRITTEN = "Written"
    ALREADY_SET = "AlreadySet"  # the same addresses were already there
    HELD_OTHER = "HeldOther"  # the status already holds different addresses
    GONE = "Gone"  # the object was deleted


@dataclass(frozen=True)
class AllocatedStatus:
    addresses: tuple[str, ...]
    reason: str
    message: str
    allocated_at: datetime


def _addresses(body: Body) -> tuple[str, ...]:
    return tuple((body.get("status") or {}).get("addresses") or ())


def _conditions(body: Body) -> list[Body]:
    return list((body.get("status") or {}).get("conditions") or [])


def _operator_status(current: Body, allocated: Body, **changes: Any) -> Body:
    """Everything the operator owns in the status, as applied under its field manager.

    Server-side apply removes what a manager applied before and leaves out now, so every
    operator write names all its fields: the addresses and allocatedAt already there
    (unless ``changes`` says otherwise), observedGeneration, and its one condition —
    never the agent's conditions, which the agent applies under a manager of its own.
    """
    status = current.get("status") or {}
    owned: Body = {
        key: status[key] for key in ("addresses", "allocatedAt") if status.get(key) is not None
    }
    owned["observedGeneration"] = int(current["metadata"].get("generation") or 0)
    owned.update(changes)
    owned["conditions"] = [allocated]
    return {"status": {k: v for k, v in owned.items() if v is not None}}


def _allocated(current: Body, *, status: str, reason: str, message: str) -> Body:
    """The Allocated condition as it should be now (lastTransitionTime kept unless it flips)."""
    generation = int(current["metadata"].get("generation") or 0)
    merged = set_condition(
        _conditions(current),
        type_=ALLOCATED,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
    )
    return next(c for c in merged if c["type"] == ALLOCATED)


async def _cas_status(kube: Kube, body: Body, build: PatchBuilder) -> tuple[bool, Body | None]:
    """Compare-and-swap of the operator's status fields, written by server-side apply."""
    name = body["metadata"]["name"]

    async def write(patch: Body) -> Body:
        return await kube.apply_status(
            names.MESH_AGENT_PLURAL,
            name,
            patch["status"],
            manager=names.OPERATOR_FIELD_MANAGER,
            resource_version=patch["metadata"]["resourceVersion"],
        )

    return await compare_and_swap(body, build, write, lambda: kube.read_agent(name))


async def write_allocation(
    kube: Kube, body: Body, status: AllocatedStatus
) -> tuple[WriteOutcome, Body | None]:
    """Set ``status.addresses`` once; returns the outcome and the latest object seen."""

    def build(current: Body) -> Body | None:
        if _addresses(current):
            return None  # an address, once set, is never replaced
        generation = int(current["metadata"].get("generation") or 0)
        conditions = set_condition(
            _conditions(current),
            type_=ALLOCATED,
            status=CONDITION_TRUE,
            reason=status.reason,
            message=status.message,
            observed_generation=generation,
        )
        return {
            "status": {
                "addresses": list(status.addresses),
                "allocatedAt": utc_timestamp(status.allocated_at),
                "observedGeneration": generation,
                # The whole list, the agent's conditions as they are: the resourceVersion
                # precondition makes this list exactly the current one plus ours.
                "conditions": conditions,
            }
        }

    name = body["metadata"]["name"]

    async def write(patch: Body) -> Body:
        # A merge patch, not an apply: the first address is the hot path of every join
        # (5000 at once after a cluster's restart), and an apply costs the API server
        # notably more. The precondition keeps it a compare-and-swap; it changes no field
        # of the agent's, so the agent keeps owning its conditions.
        return await kube.patch_status(
            names.MESH_AGENT_PLURAL, name, patch, manager=names.OPERATOR_FIELD_MANAGER
        )

    written, latest = await compare_and_swap(body, build, write, lambda: kube.read_agent(name))
    if latest is None:
        return WriteOutcome.GONE, None
    if written:
        return WriteOutcome.WRITTEN, latest
    same = _addresses(latest) == status.addresses
    return (WriteOutcome.ALREADY_SET if same else WriteOutcome.HELD_OTHER), latest


async def write_allocated_condition(
    kube: Kube, body: Body, *, status: str, reason: str, message: str
) -> bool:
    """Set the Allocated condition (no address change); True if anything was written."""

    def build(current: Body) -> Body | None:
        allocated = _allocated(current, status=status, reason=reason, message=message)
        if allocated in _conditions(current):
            return None  # set_condition kept every field, lastTransitionTime included
        return _operator_status(current, allocated)

    written, _ = await _cas_status(kube, body, build)
    return written


async def set_finalizer(kube: Kube, body: Body, *, present: bool) -> Body | None:
    """Add or remove the release finalizer, keeping everyone else's finalizers."""

    def build(current: Body) -> Body | None:
        finalizers: Sequence[str] = current["metadata"].get("finalizers") or []
        if (names.RELEASE_FINALIZER in finalizers) == present:
            return None
        wanted = (
            [*finalizers, names.RELEASE_FINALIZER]
            if present
            else [f for f in finalizers if f != names.RELEASE_FINALIZER]
        )
        return {"metadata": {"finalizers": wanted}}

    name = body["metadata"]["name"]

    async def write(patch: Body) -> Body:
        return await kube.patch_agent(name, patch)

    _, latest = await compare_and_swap(body, build, write, lambda: kube.read_agent(name))
    return latest


async def clear_duplicate(
    kube: Kube, body: Body, *, uid: str, address: str, reason: str, message: str
) -> tuple[bool, Body | None]:
    """Take ``address`` away from the agent ``uid`` (repair of a true duplicate).

    The only write that removes an address from a status; it happens only while that
    very agent still claims it.
    """

    name = body["metadata"]["name"]

    def clear(current: Body) -> Body | None:
        if current["metadata"]["uid"] != uid or address not in _addresses(current):
            return None
        return {"status": {"addresses": None, "allocatedAt": None}}

    async def merge(patch: Body) -> Body:
        return await kube.patch_status(names.MESH_AGENT_PLURAL, name, patch)

    # A merge patch, not an apply: the duplicate may have been written by anyone (a
    # restore, a hand edit), and an apply only removes what its own manager applied.
    cleared, latest = await compare_and_swap(body, clear, merge, lambda: kube.read_agent(name))
    if not cleared or latest is None:
        return cleared, latest

    def condition(current: Body) -> Body | None:
        allocated = _allocated(current, status=CONDITION_FALSE, reason=reason, message=message)
        return _operator_status(current, allocated)

    _, latest = await _cas_status(kube, latest, condition)
    return True, latest
