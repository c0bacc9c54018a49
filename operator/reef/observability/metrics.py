"""Prometheus metrics of both processes; names follow the ``reef_<component>_`` convention."""

import heapq
import platform
from collections.abc import Callable, Mapping

from reef import __version__
from reef.leanimport import import_skipping_package_init

# The metric types and the registry without prometheus_client/__init__, which also
# imports its exposition module (HTTP servers, urllib.request, gateway pushes: ≈ 9 ms of
# a node agent's start, before its interface is up). The default collectors (process_*,
# python_gc_*, python_info) are imported as that file would: importing them registers
# them. The exposition is imported where something is served (serve_metrics, and
# reef.observability.http at its first scrape).
import_skipping_package_init(
    ["prometheus_client"],
    [
        "prometheus_client.metrics",
        "prometheus_client.registry",
        "prometheus_client.gc_collector",
        "prometheus_client.platform_collector",
        "prometheus_client.process_collector",
    ],
)
from prometheus_client.metrics import Counter, Gauge, Histogram  # noqa: E402 (after the above)
from prometheus_client.registry import REGISTRY  # noqa: E402

BUILD_INFO = Gauge(
    "reef_build_info",
    "reef's version and the process it runs as (value is always 1); absent = not running.",
    ["component", "version", "python_version"],
)

ALLOCATIONS = Counter(
    "reef_operator_allocations_total",
    "Allocations published in a MeshAgent's status, by network and kind: new, or adopted"
    " (taken over from a ledger entry whose status write was interrupted).",
    ["network", "kind"],
)
ALLOCATION_FAILURES = Counter(
    "reef_operator_allocation_failures_total",
    "Allocation requests that could not be granted, by network and reason.",
    ["network", "reason"],
)
RELEASES = Counter("reef_operator_releases_total", "Addresses marked released.", ["network"])
CONFLICTS = Counter(
    "reef_operator_conflicts_total",
    "True duplicates found by repair (two live MeshAgents claiming one address).",
    ["network"],
)
LEDGER_WRITES = Counter(
    "reef_operator_ledger_writes_total", "Ledger shard writes, by outcome.", ["network", "outcome"]
)
LEDGER_WRITE_RETRIES = Counter(
    "reef_operator_ledger_write_retries_total",
    "Ledger batches re-planned after a compare-and-swap conflict (HTTP 409).",
    ["network"],
)
BATCH_SIZE = Histogram(
    "reef_operator_allocation_batch_size",
    "Requests handled by one ledger write.",
    ["network"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
ALLOCATION_LATENCY = Histogram(
    "reef_operator_allocation_latency_seconds",
    "From the operator asking the network's batcher for a MeshAgent's address to"
    " status.addresses being written, for addresses this operator wrote (ledger batch and"
    " status write; not the finalizer write, refusals, or the wait before the operator saw it).",
    ["network"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
POOL_UTILISATION = Gauge(
    "reef_operator_pool_utilisation_ratio",
    "Allocated plus reserved addresses over capacity.",
    ["network"],
)
LEDGER_PROBLEMS = Gauge(
    "reef_operator_ledger_unreadable_entries",
    "Ledger entries that could not be decoded (their addresses are kept out of the pool).",
    ["network"],
)

AGENT_PEERS = Gauge("reef_agent_peers", "WireGuard peers configured on this node.")
AGENT_PEERS_HEALTHY = Gauge(
    "reef_agent_peers_healthy", "Peers with a handshake in the last 180 seconds."
)
#: Per peer, but only for the few oldest (:class:`OldestHandshakes`): one series per peer
#: would be N per node and N² per cluster, and peers that left would linger.
AGENT_HANDSHAKE_AGE = Gauge(
    "reef_agent_peer_handshake_age_seconds",
    "Seconds since the last handshake, for this node's oldest handshakes only (at most 10 peers).",
    ["peer"],
)
AGENT_HANDSHAKE_AGE_MAX = Gauge(
    "reef_agent_peer_handshake_age_max_seconds",
    "Seconds since the last handshake of the peer heard from longest ago (0: none yet).",
)
AGENT_SYNC_DURATION = Histogram(
    "reef_agent_sync_duration_seconds",
    "Time to plan and apply one peer-set change to the device.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
AGENT_READY = Gauge(
    "reef_agent_ready",
    "1 while the interface is configured with the permanent address (as /readyz), else 0.",
)
AGENT_BACKEND = Gauge(
    "reef_agent_backend_info", "The WireGuard backend in use (value is always 1).", ["backend"]
)


def report_build_info(component: str) -> None:
    """Set ``reef_build_info{component=...}`` for this process (operator or agent)."""
    BUILD_INFO.labels(component, __version__, platform.python_version()).set(1)


def report_readiness(readiness: Callable[[], tuple[bool, str]]) -> None:
    """Make ``reef_agent_ready`` ask ``readiness`` at every scrape (never stale)."""
    AGENT_READY.set_function(lambda: 1.0 if readiness()[0] else 0.0)


def exposition() -> tuple[bytes, str]:
    """This process's metrics in the text format, and its content type (for /metrics)."""
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_metrics(port: int, address: str = "0.0.0.0") -> None:
    """Expose /metrics on ``port`` (0 leaves it off, e.g. in tests that run many processes)."""
    if port:
        from prometheus_client.exposition import start_http_server

        start_http_server(port, addr=address)


class OldestHandshakes:
    """Handshake ages as a bounded set of series: the ``limit`` oldest by peer name (the
    ones an admin looks for) and the maximum. A peer that leaves that set — or the mesh —
    has its series removed, so a process never exports more than ``limit`` of them."""

    def __init__(self, by_peer: Gauge, oldest: Gauge, limit: int = 10) -> None:
        self._by_peer = by_peer
        self._oldest = oldest
        self._limit = limit
        self._exported: set[str] = set()

    def update(self, ages: Mapping[str, float]) -> None:
        """The current age (seconds) of every peer with a handshake, by name."""
        top = heapq.nlargest(self._limit, ages.items(), key=lambda item: item[1])
        keep = {name for name, _ in top}
        for name in self._exported - keep:
            self._by_peer.remove(name)
        for name, age in top:
            self._by_peer.labels(name).set(age)
        self._exported = keep
        self._oldest.set(top[0][1] if top else 0)
