"""The fixed catalogue of Event reasons reef emits, and a small poster for them.

Reasons are stable API: alerts and runbooks match on them. Ordinary success (an address
allocated) is shown by the ``Allocated`` condition, not an Event, so a burst of a
thousand new nodes does not cost a thousand extra writes.
"""

from enum import StrEnum


class Reason(StrEnum):
    ADDRESS_ADOPTED = "AddressAdopted"
    ADDRESS_RELEASED = "AddressReleased"
    ADDRESS_CONFLICT = "AddressConflict"
    REQUESTED_ADDRESS_UNAVAILABLE = "RequestedAddressUnavailable"
    POOL_EXHAUSTED = "PoolExhausted"
    POOL_NEARLY_EXHAUSTED = "PoolNearlyExhausted"
    NETWORK_NOT_FOUND = "NetworkNotFound"
    LEDGER_ENTRY_UNREADABLE = "LedgerEntryUnreadable"
    LEDGER_ENTRY_RESTORED = "LedgerEntryRestored"
    ORPHAN_RELEASED = "OrphanReleased"
    INTERFACE_CONFIGURED = "InterfaceConfigured"
    PEER_SKIPPED = "PeerSkipped"
    ROUTE_REFUSED = "RouteRefused"
    KEY_ERROR = "KeyError"
    ENDPOINT_OVERRIDE_INVALID = "EndpointOverrideInvalid"
    PORT_IN_USE = "PortInUse"
    POOL_OVERLAP = "PoolOverlap"
    NETWORK_IN_USE = "NetworkInUse"


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"
