"""Writes the operator makes to a MeshAgent: its finalizer and its allocation status.

Every write carries the ``resourceVersion`` it was computed from, so nothing the
operator writes can silently overwrite a change it has not seen — in particular a
status that already holds an address is never replaced by another one.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from reef.api import names
from reef.api.conditions import (
    CONDITION_FALSE,
    CONDITION_TRUE,
    condition_changed,
    set_condition,
    utc_timestamp,
)
from reef.kube.client import CONFLICT, NOT_FOUND, Kube, is_status

log = logging.getLogger(__name__)

ALLOCATED = "Allocated"
#: Attempts at a compare-and-swap write before giving up to the next reconcile.
MAX_ATTEMPTS = 8


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


def _addresses(body: dict[str, Any]) -> tuple[str, ...]:
    return tuple((body.get("status") or {}).get("addresses") or ())


def _conditions(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list((body.get("status") or {}).get("conditions") or [])


async def _fresh(kube: Kube, name: str) -> dict[str, Any] | None:
    try:
        return await kube.get_agent(name)
    except Exception as error:
        if is_status(error, NOT_FOUND):
            return None
        raise


PatchBuilder = Callable[[dict[str, Any]], "dict[str, Any] | None"]
Writer = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def compare_and_swap(
    kube: Kube, body: dict[str, Any], build: PatchBuilder, write: Writer
) -> tuple[bool, dict[str, Any] | None]:
    """Read-modify-write of one MeshAgent with its resourceVersion as the precondition.

    ``build`` gets the latest object and returns the merge patch to send, or None when
    nothing needs writing. On 409 the object is read again and ``build`` asked again.
    Returns (whether a write happened, the latest object; None once it is gone).
    """
    name = body["metadata"]["name"]
    current: dict[str, Any] | None = body
    for _ in range(MAX_ATTEMPTS):
        if current is None:
            return False, None
        patch = build(current)
        if patch is None:
            return False, current
        patch.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            return True, await write(name, patch)
        except Exception as error:
            if is_status(error, NOT_FOUND):
                return False, None
            if not is_status(error, CONFLICT):
                raise
        current = await _fresh(kube, name)
    raise RuntimeError(f"MeshAgent {name} kept changing under us; the next reconcile retries")


def _status_writer(kube: Kube) -> Writer:
    async def write(name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await kube.patch_status(names.MESH_AGENT_PLURAL, name, patch)

    return write


async def write_allocation(
    kube: Kube, body: dict[str, Any], status: AllocatedStatus
) -> tuple[WriteOutcome, dict[str, Any] | None]:
    """Set ``status.addresses`` once; returns the outcome and the latest object seen."""

    def build(current: dict[str, Any]) -> dict[str, Any] | None:
        if _addresses(current):
            return None  # an address, once set, is never replaced
        generation = int(current["metadata"].get("generation") or 0)
        return {
            "status": {
                "addresses": list(status.addresses),
                "allocatedAt": utc_timestamp(status.allocated_at),
                "observedGeneration": generation,
                "conditions": set_condition(
                    _conditions(current),
                    type_=ALLOCATED,
                    status=CONDITION_TRUE,
                    reason=status.reason,
                    message=status.message,
                    observed_generation=generation,
                ),
            }
        }

    written, latest = await compare_and_swap(kube, body, build, _status_writer(kube))
    if latest is None:
        return WriteOutcome.GONE, None
    if written:
        return WriteOutcome.WRITTEN, latest
    same = _addresses(latest) == status.addresses
    return (WriteOutcome.ALREADY_SET if same else WriteOutcome.HELD_OTHER), latest


async def write_allocated_condition(
    kube: Kube, body: dict[str, Any], *, status: str, reason: str, message: str
) -> bool:
    """Set the Allocated condition (no address change); True if anything was written."""

    def build(current: dict[str, Any]) -> dict[str, Any] | None:
        generation = int(current["metadata"].get("generation") or 0)
        existing = _conditions(current)
        unchanged = not condition_changed(
            existing,
            type_=ALLOCATED,
            status=status,
            reason=reason,
            message=message,
            observed_generation=generation,
        )
        if unchanged:
            return None
        conditions = set_condition(
            existing,
            type_=ALLOCATED,
            status=status,
            reason=reason,
            message=message,
            observed_generation=generation,
        )
        return {"status": {"observedGeneration": generation, "conditions": conditions}}

    written, _ = await compare_and_swap(kube, body, build, _status_writer(kube))
    return written


async def set_finalizer(
    kube: Kube, body: dict[str, Any], *, present: bool
) -> dict[str, Any] | None:
    """Add or remove the release finalizer, keeping everyone else's finalizers."""

    def build(current: dict[str, Any]) -> dict[str, Any] | None:
        finalizers: Sequence[str] = current["metadata"].get("finalizers") or []
        if (names.RELEASE_FINALIZER in finalizers) == present:
            return None
        wanted = (
            [*finalizers, names.RELEASE_FINALIZER]
            if present
            else [f for f in finalizers if f != names.RELEASE_FINALIZER]
        )
        return {"metadata": {"finalizers": wanted}}

    _, latest = await compare_and_swap(kube, body, build, kube.patch_agent)
    return latest


async def clear_duplicate(
    kube: Kube, body: dict[str, Any], *, uid: str, address: str, reason: str, message: str
) -> tuple[bool, dict[str, Any] | None]:
    """Take ``address`` away from the agent ``uid`` (repair of a true duplicate).

    The only write that removes an address from a status; it happens only while that
    very agent still claims it.
    """

    def build(current: dict[str, Any]) -> dict[str, Any] | None:
        if current["metadata"]["uid"] != uid or address not in _addresses(current):
            return None
        generation = int(current["metadata"].get("generation") or 0)
        conditions = set_condition(
            _conditions(current),
            type_=ALLOCATED,
            status=CONDITION_FALSE,
            reason=reason,
            message=message,
            observed_generation=generation,
        )
        return {"status": {"addresses": None, "allocatedAt": None, "conditions": conditions}}

    return await compare_and_swap(kube, body, build, _status_writer(kube))
