"""The value types of the allocation core: owners, requests, results, problems.

Everything here is a frozen dataclass: the allocator hands these to the operator
and the operator turns them into statuses, conditions and Events, so they must
not change behind anybody's back. Dataclasses rather than pydantic models because
a /10 ledger holds millions of owners and construction cost matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

#: Kubernetes object names (DNS subdomains) are at most 253 characters.
MAX_NAME_LENGTH = 253
#: Kubernetes assigns RFC 4122 UUIDs (36 characters); we accept up to 64 of
#: [-a-zA-Z0-9] so that the shard-size bound (see codec) holds for any accepted uid.
MAX_UID_LENGTH = 64
_UID_RE = re.compile(r"[-a-zA-Z0-9]{1,64}")
_NAME_RE = re.compile(r"[a-z0-9]([-.a-z0-9]*[a-z0-9])?")


def normalise_time(moment: datetime) -> datetime:
    """UTC, whole seconds: what the ledger stores, so a decoded entry equals the written one."""
    if moment.tzinfo is None:
        raise ValueError(f"time {moment.isoformat()} has no timezone; pass an aware datetime")
    return moment.astimezone(UTC).replace(microsecond=0)


def check_uid(uid: str) -> str:
    if not _UID_RE.fullmatch(uid):
        raise ValueError(f"uid {uid!r} is not 1-{MAX_UID_LENGTH} characters of [-a-zA-Z0-9]")
    return uid


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        raise ValueError(f"name {name!r} is not a Kubernetes object name (DNS subdomain)")
    return name


class EntryState(StrEnum):
    ALLOCATED = "allocated"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds (or last held) one address. ``since`` is the last state change."""

    uid: str
    name: str
    state: EntryState
    since: datetime

    def __post_init__(self) -> None:
        check_uid(self.uid)
        check_name(self.name)
        object.__setattr__(self, "state", EntryState(self.state))
        object.__setattr__(self, "since", normalise_time(self.since))


@dataclass(frozen=True, slots=True)
class Policy:
    """The MeshNetwork's reuse rules (spec.reuseCooldown, spec.retention)."""

    reuse_cooldown: timedelta = timedelta(minutes=5)
    retention: timedelta = timedelta(hours=24)

    @property
    def forget_after(self) -> timedelta:
        """A released entry older than this protects nothing and may be garbage-collected."""
        return max(self.reuse_cooldown, self.retention)


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """One pending MeshAgent: its identity and its optional spec.requestedAddresses."""

    uid: str
    name: str
    requested: tuple[IPAddress, ...] = ()

    def __post_init__(self) -> None:
        check_uid(self.uid)
        check_name(self.name)


class RefusalReason(StrEnum):
    """Why a requested address was not granted (fixed catalogue; used in Events)."""

    OUTSIDE_POOL = "OutsidePool"
    NETWORK_ADDRESS = "NetworkAddress"
    BROADCAST_ADDRESS = "BroadcastAddress"
    IN_USE = "InUse"
    COOLING_DOWN = "CoolingDown"
    #: Two requested addresses of one family: a member gets one address per family.
    FAMILY_REQUESTED_TWICE = "FamilyRequestedTwice"


@dataclass(frozen=True, slots=True)
class Refusal:
    address: IPAddress
    reason: RefusalReason
    message: str


class Outcome(StrEnum):
    """Result of one request; values are the MeshAgent ``Allocated`` condition reasons."""

    ALLOCATED = "Allocated"
    POOL_EXHAUSTED = "PoolExhausted"
    REQUESTED_ADDRESS_UNAVAILABLE = "RequestedAddressUnavailable"


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """What one request got. ``addresses`` is empty unless the outcome is ALLOCATED;
    it then holds one address per pool, IPv4 first."""

    request: AllocationRequest
    outcome: Outcome
    addresses: tuple[IPAddress, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class AllocationBatch:
    """Results in request order, plus the shards whose ConfigMaps must be written."""

    results: tuple[AllocationResult, ...]
    changed_shards: frozenset[str] = field(default_factory=frozenset)


class ProblemKind(StrEnum):
    BAD_KEY = "BadKey"
    BAD_VALUE = "BadValue"
    OUTSIDE_POOL = "OutsidePool"
    WRONG_SHARD = "WrongShard"
    UNUSABLE_ADDRESS = "UnusableAddress"
    UNKNOWN_SHARD = "UnknownShard"


@dataclass(frozen=True, slots=True)
class Problem:
    """One ledger entry that could not be trusted. Its address (if any) stays taken and
    the raw key/value are written back untouched, so a human can repair it."""

    shard: str
    key: str
    kind: ProblemKind
    message: str
