"""``reef agent``: the node agent's entry point (settings, logging, signals, exit code)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal

from reef.agent import malloc, ports
from reef.agent.agent import Agent
from reef.agent.bootstrap import own_ref
from reef.agent.early import EarlyRegistration
from reef.kube.client import Kube, load_api_client
from reef.kube.events import EventRecorder
from reef.kube.http import connect
from reef.observability.events import EventType, Reason
from reef.observability.http import ProbeServer
from reef.observability.logs import configure_logging
from reef.observability.metrics import report_build_info, report_readiness
from reef.settings import AgentSettings, SettingsError

log = logging.getLogger(__name__)

#: Threads for blocking API calls; the agent makes few, plus one thread per informer.
API_WORKERS = 4


def agent_kube(settings: AgentSettings, workers: int) -> Kube:
    """The agent's API access: the standard-library transport (reef.kube.http) with
    in-cluster credentials or a static kubeconfig; the official client for any other."""
    transport = connect(settings.kubeconfig, settings.kube_context, os.environ)
    if transport is None:
        return Kube(load_api_client(settings, workers), workers)
    return Kube(None, workers, transport)


async def _main(
    settings: AgentSettings, probes: ProbeServer, early: EarlyRegistration | None
) -> int:
    kube = agent_kube(settings, API_WORKERS)
    agent = Agent(settings, kube, early)
    loop = asyncio.get_running_loop()
    probes.attach(loop, agent.readiness)
    report_readiness(agent.readiness)
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Stop without touching the interface: traffic keeps flowing through an upgrade.
        loop.add_signal_handler(signum, agent.request_stop)
    try:
        return await agent.run()
    finally:
        kube.close()


async def _record_port_in_use(settings: AgentSettings, message: str) -> None:
    """The Event on our MeshAgent (or, before the first registration, on its name)."""
    kube = agent_kube(settings, 1)
    try:
        involved = await own_ref(kube, settings.node_name)
        await EventRecorder(kube, "agent").record(
            involved, EventType.WARNING, Reason.PORT_IN_USE, message
        )
    finally:
        kube.close()


def run_agent(early: EarlyRegistration | None = None) -> int:
    """``reef agent``; ``early``: the MeshAgent reef.agent.early created, if it did."""
    try:
        settings = AgentSettings.from_environment()
    except SettingsError as error:
        print(f"reef agent: invalid settings (REEF_* environment variables):\n{error}")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    # Before the dataplane thread reads its first device answer (reef.agent.malloc).
    if not (malloc.pin_mmap_threshold() and malloc.limit_arenas()):
        log.debug("the C library has no adjustable mmap threshold or arenas; left as they are")
    # /metrics, /healthz and /readyz; started before the loop so a probe never sees a refusal
    # that the kubelet would count as a failure during start-up.
    report_build_info("agent")
    probes = ProbeServer(settings.metrics_port, settings.bind_address)
    try:
        probes.start()
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        message = ports.metrics_port_message(
            settings.node_name, settings.bind_address, settings.metrics_port
        )
        log.error("%s", message)
        ports.write_termination_message(message)
        asyncio.run(_record_port_in_use(settings, message))
        return 5
    if "REEF_ROLE" in os.environ:
        # Older agents copied REEF_ROLE into spec.role; a node may no longer
        # promote itself. Existing MeshAgents keep the role they have.
        log.warning(
            "REEF_ROLE is no longer read: spec.role is admin-owned. Set it with"
            ' `kubectl patch meshagent %s --type merge -p \'{"spec":{"role":"Hub"}}\'`'
            " and remove REEF_ROLE from the agent's environment",
            settings.node_name,
        )
    log.info(
        "reef agent starting on node %s, network %s, interface %s",
        settings.node_name,
        settings.network,
        settings.interface,
    )
    try:
        return asyncio.run(_main(settings, probes, early))
    finally:
        probes.stop()
