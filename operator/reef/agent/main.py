"""``reef agent``: the node agent's entry point (settings, logging, signals, exit code)."""

from __future__ import annotations

import asyncio
import logging
import signal

from pydantic import ValidationError

from reef.agent.agent import Agent
from reef.kube.client import Kube, load_api_client
from reef.observability.http import ProbeServer
from reef.observability.logs import configure_logging
from reef.settings import AgentSettings

log = logging.getLogger(__name__)

#: Threads for blocking API calls; the agent makes few, plus one thread per informer.
API_WORKERS = 4


async def _main(settings: AgentSettings, probes: ProbeServer) -> int:
    kube = Kube(load_api_client(settings, API_WORKERS), API_WORKERS)
    agent = Agent(settings, kube)
    loop = asyncio.get_running_loop()
    probes.attach(loop, agent.readiness)
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Stop without touching the interface: traffic keeps flowing through an upgrade.
        loop.add_signal_handler(signum, agent.request_stop)
    try:
        return await agent.run()
    finally:
        kube.close()


def run_agent() -> int:
    try:
        settings = AgentSettings()
    except ValidationError as error:
        print(f"reef agent: invalid settings (REEF_* environment variables):\n{error}")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    # /metrics, /healthz and /readyz; started before the loop so a probe never sees a refusal
    # that the kubelet would count as a failure during start-up.
    probes = ProbeServer(settings.metrics_port, settings.bind_address)
    probes.start()
    log.info(
        "reef agent starting on node %s, network %s, interface %s",
        settings.node_name,
        settings.network,
        settings.interface,
    )
    try:
        return asyncio.run(_main(settings, probes))
    finally:
        probes.stop()
