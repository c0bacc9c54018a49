"""Kubernetes-convention conditions: set one type, keep lastTransitionTime honest.

``lastTransitionTime`` changes only when ``status`` flips; a new reason or message on the
same status keeps the old time. Used by both the operator and the agent.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

CONDITION_TRUE = "True"
CONDITION_FALSE = "False"
CONDITION_UNKNOWN = "Unknown"


def utc_timestamp(now: datetime | None = None) -> str:
    """RFC 3339 with second precision and a Z, as the API server writes times."""
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    existing: Iterable[dict[str, Any]],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Return the condition list with ``type_`` set; other types are left as they are."""
    conditions = [dict(c) for c in existing]
    previous = next((c for c in conditions if c.get("type") == type_), None)
    transition = (
        previous["lastTransitionTime"]
        if previous is not None
        and previous.get("status") == status
        and previous.get("lastTransitionTime")
        else utc_timestamp(now)
    )
    updated = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
        "observedGeneration": observed_generation,
    }
    if previous is None:
        conditions.append(updated)
    else:
        conditions[conditions.index(previous)] = updated
    return conditions
