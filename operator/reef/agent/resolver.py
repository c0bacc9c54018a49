"""Endpoint host names resolved for the peer planner (I/O, so not in planning)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

from reef.agent.control import LOGGER_NAME
from reef.dataplane.spec import IPAddress

DNS_TIMEOUT_SECONDS = 5.0

log = logging.getLogger(LOGGER_NAME)


class Resolver:
    """Each name resolved once until :meth:`clear` (the periodic resync)."""

    def __init__(self) -> None:
        self.resolved: dict[str, IPAddress | None] = {}

    def clear(self) -> None:
        self.resolved.clear()

    async def resolve(self, hostnames: set[str]) -> None:
        """Resolve endpoint names not resolved since the last resync, all at once: names
        that do not answer stall the loop one DNS_TIMEOUT_SECONDS in all, not one each."""
        pending = sorted(hostnames - self.resolved.keys())
        answers = await asyncio.gather(*(_lookup(host) for host in pending))
        self.resolved.update(zip(pending, answers, strict=True))


async def _lookup(host: str) -> IPAddress | None:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), DNS_TIMEOUT_SECONDS
        )
        return ipaddress.ip_address(infos[0][4][0])
    except (OSError, TimeoutError, ValueError, IndexError) as error:
        log.warning("endpoint host %s does not resolve: %s", host, error)
        return None
