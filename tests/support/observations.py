"""An agent's Observation (what reef.agent.health turns into conditions) for unit tests:
a configured userspace member whose peer counts the test chooses."""

from __future__ import annotations

from reef.agent.health import Observation


def configured_member(
    healthy: int, total: int, unhealthy: tuple[str, ...] = (), joining: tuple[str, ...] = ()
) -> Observation:
    return Observation(
        backend="userspace",
        backend_reason="",
        interface="reef0",
        configured_addresses=("100.64.0.1/32",),
        listen_port=51820,
        allocated=True,
        configured=True,
        configure_error=None,
        total=total,
        healthy=healthy,
        unhealthy=unhealthy,
        joining=joining,
        skipped=(),
    )
