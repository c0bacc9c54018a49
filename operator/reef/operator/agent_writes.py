"""Writes the operator makes to a MeshAgent: its finalizer and its allocation status.

Every write carries the ``resourceVersion`` it was computed from, so nothing the
operator writes can silently overwrite a change it has not seen — in particular a
status that already holds an address is never replaced by another one.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from reef.api import names
from reef.api.conditions import CONDITION_TRUE, condition_changed, set_condition, utc_timestamp
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


async def write_allocation(
    kube: Kube, body: dict[str, Any], status: AllocatedStatus
) -> tuple[WriteOutcome, dict[str, Any] | None]:
    """Set ``status.addresses`` once; returns the outcome and the latest object seen."""
    current: dict[str, Any] | None = body
    for _ in range(MAX_ATTEMPTS):
        if current is None:
            return WriteOutcome.GONE, None
        held = _addresses(current)
        if held:
            same = held == status.addresses
            return (WriteOutcome.ALREADY_SET if same else WriteOutcome.HELD_OTHER), current
        metadata = current["metadata"]
        generation = int(metadata.get("generation") or 0)
        patch = {
            "metadata": {"resourceVersion": metadata["resourceVersion"]},
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
            },
        }
        try:
            written = await kube.patch_status(names.MESH_AGENT_PLURAL, metadata["name"], patch)
            return WriteOutcome.WRITTEN, written
        except Exception as error:
            if is_status(error, NOT_FOUND):
                return WriteOutcome.GONE, None
            if not is_status(error, CONFLICT):
                raise
        current = await _fresh(kube, body["metadata"]["name"])
    raise RuntimeError(f"status of MeshAgent {body['metadata']['name']} kept changing under us")


async def write_allocated_condition(
    kube: Kube, body: dict[str, Any], *, status: str, reason: str, message: str
) -> dict[str, Any] | None:
    """Set the Allocated condition (no address change); skipped when nothing would change."""
    current: dict[str, Any] | None = body
    for _ in range(MAX_ATTEMPTS):
        if current is None:
            return None
        metadata = current["metadata"]
        generation = int(metadata.get("generation") or 0)
        existing = _conditions(current)
        if not condition_changed(
            existing,
            type_=ALLOCATED,
            status=status,
            reason=reason,
            message=message,
            observed_generation=generation,
        ):
            return current
        patch = {
            "metadata": {"resourceVersion": metadata["resourceVersion"]},
            "status": {
                "observedGeneration": generation,
                "conditions": set_condition(
                    existing,
                    type_=ALLOCATED,
                    status=status,
                    reason=reason,
                    message=message,
                    observed_generation=generation,
                ),
            },
        }
        try:
            written: dict[str, Any] = await kube.patch_status(
                names.MESH_AGENT_PLURAL, metadata["name"], patch
            )
            return written
        except Exception as error:
            if is_status(error, NOT_FOUND):
                return None
            if not is_status(error, CONFLICT):
                raise
        current = await _fresh(kube, body["metadata"]["name"])
    raise RuntimeError(f"status of MeshAgent {body['metadata']['name']} kept changing under us")


async def set_finalizer(
    kube: Kube, body: dict[str, Any], *, present: bool
) -> dict[str, Any] | None:
    """Add or remove the release finalizer, keeping everyone else's finalizers."""
    current: dict[str, Any] | None = body
    for _ in range(MAX_ATTEMPTS):
        if current is None:
            return None
        metadata = current["metadata"]
        finalizers: Sequence[str] = metadata.get("finalizers") or []
        if (names.RELEASE_FINALIZER in finalizers) == present:
            return current
        wanted = (
            [*finalizers, names.RELEASE_FINALIZER]
            if present
            else [f for f in finalizers if f != names.RELEASE_FINALIZER]
        )
        patch = {"metadata": {"resourceVersion": metadata["resourceVersion"], "finalizers": wanted}}
        try:
            return await kube.patch_agent(metadata["name"], patch)
        except Exception as error:
            if is_status(error, NOT_FOUND):
                return None
            if not is_status(error, CONFLICT):
                raise
        current = await _fresh(kube, body["metadata"]["name"])
    raise RuntimeError(f"finalizers of MeshAgent {body['metadata']['name']} kept changing")
