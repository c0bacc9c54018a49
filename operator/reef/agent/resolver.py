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
        """Resolve endpoint names not resolved since the last resync."""
        loop = asyncio.get_running_loop()
        for host in sorted(hostnames - self.resolved.keys()):
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), DNS_TIMEOUT_SECONDS
                )
                self.resolved[host] = ipaddress.ip_address(infos[0][4][0])
            except (OSError, TimeoutError, ValueError, IndexError) as error:
                log.warning("endpoint host %s does not resolve: %s", host, error)
                self.resolved[host] = None
