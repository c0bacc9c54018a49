"""Handshake ages are exported as a bounded set of series, and peers that leave lose theirs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from reef.observability.metrics import OldestHandshakes


def _series(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["peer"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "age_seconds"
    }


def test_only_the_oldest_handshakes_have_a_series_and_departed_peers_lose_theirs() -> None:
    registry = CollectorRegistry()
    by_peer = Gauge("age_seconds", "per peer", ["peer"], registry=registry)
    oldest = Gauge("age_max_seconds", "max", registry=registry)
    ages = OldestHandshakes(by_peer, oldest, limit=3)

    ages.update({f"node-{i}": float(i) for i in range(5000)})
    assert _series(registry) == {"node-4999": 4999.0, "node-4998": 4998.0, "node-4997": 4997.0}
    assert registry.get_sample_value("age_max_seconds") == 4999.0

    # node-4999 left the mesh and node-4998 handshook again: their series go.
    ages.update({"node-4998": 1.0, **{f"node-{i}": float(i) for i in range(4998)}})
    assert _series(registry) == {"node-4997": 4997.0, "node-4996": 4996.0, "node-4995": 4995.0}

    ages.update({})
    assert _series(registry) == {}
    assert registry.get_sample_value("age_max_seconds") == 0.0
