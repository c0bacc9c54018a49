"""The WireGuard device as the agent drives it: one thread owns every backend call.

pyroute2 0.9 wraps an asyncio core in its sync classes and refuses to run inside a
running event loop, so the backend is created and used only on a dedicated
single-thread executor; calls are serialized there (backends are not thread-safe).

Also here: the underlay MTU (default mesh MTU = underlay - 80, WireGuard's worst-case
IPv6 overhead) and IP forwarding for hubs. Forwarding is switched on per interface
(``net.ipv4.conf.<if>.forwarding``, ``net.ipv6.conf.<if>.forwarding``): IPv4 forwards
a packet when its *input* interface forwards, so a hub relays between its WireGuard
peers without turning every other interface of the host into a router. (For IPv6 the
kernel also needs ``net.ipv6.conf.all.forwarding=1``, which changes host-wide router
behaviour: that stays the admin's decision and is not done here.)
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from reef.dataplane import Backend, DeviceSpec, DeviceState, PeerPlan, PeerSpec
from reef.dataplane.spec import PeerLiveness

if TYPE_CHECKING:
    from reef.dataplane.select import BackendChoice

# pyroute2 (reef.dataplane.netlink, .select) is imported by the first call on the device's
# thread, not by importing this module: the agent registers while that import runs.

T = TypeVar("T")

log = logging.getLogger(__name__)

WIREGUARD_OVERHEAD = 80
FALLBACK_UNDERLAY_MTU = 1500


def underlay_mtu(node_ip: str | None) -> int:
    """MTU of the interface holding ``node_ip`` (else of the default route's)."""
    from reef.dataplane.netlink import IPRoute

    with IPRoute() as ipr:
        index: int | None = None
        if node_ip:
            family = 2 if ipaddress.ip_address(node_ip).version == 4 else 10
            for message in ipr.get_addr(family=family):
                if message.get("IFA_ADDRESS") == node_ip:
                    index = message["index"]
                    break
        if index is None:
            for route in ipr.get_default_routes(family=2):
                index = route.get("RTA_OIF")
                break
        if index is None:
            return FALLBACK_UNDERLAY_MTU
        (link,) = ipr.link("get", index=index)
        mtu: int = link.get("IFLA_MTU") or FALLBACK_UNDERLAY_MTU
        return mtu


def enable_forwarding(ifname: str, versions: Sequence[int]) -> None:
    for version in versions:
        path = Path(f"/proc/sys/net/ipv{version}/conf/{ifname}/forwarding")
        if path.exists() and path.read_text().strip() != "1":
            path.write_text("1\n")


def interface_index(ifname: str) -> int | None:
    from reef.dataplane.links import link_index
    from reef.dataplane.netlink import IPRoute

    with IPRoute() as ipr:
        return link_index(ipr, ifname)


def _open_backend(
    ifname: str, override: Any, started: subprocess.Popen[bytes] | None
) -> tuple[Backend, BackendChoice]:
    # Imported on the device's thread, not the event loop's. Usually reef.__main__ has
    # imported them already (AGENT_MODULES); when it has not (the early step left the
    # registration, or a test runs the agent directly), pyroute2's ≈ 50 ms of imports
    # then run while the informers' first lists go out instead of before them.
    from reef.dataplane.select import open_backend
    from reef.dataplane.userspace import UserspaceBackend

    backend, choice = open_backend(ifname, override)
    if started is not None:
        if isinstance(backend, UserspaceBackend):
            backend.adopt(started)
        else:  # not expected: the early step asked the kernel the same question
            log.warning("stopping wireguard-go pid %d: backend %s", started.pid, choice.kind)
            started.terminate()
            started.wait()
    return backend, choice


class Device:
    """The agent's handle on its interface; every method is awaitable."""

    def __init__(self, ifname: str, started: subprocess.Popen[bytes] | None = None) -> None:
        """``started``: the wireguard-go reef.agent.early started for ``ifname``, if any."""
        self.ifname = ifname
        self._started = started
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataplane")
        self._backend: Backend | None = None
        self.choice: BackendChoice | None = None

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    async def open(self, override: Any = None) -> BackendChoice:
        self._backend, choice = await self._run(_open_backend, self.ifname, override, self._started)
        self._started = None
        self.choice = choice
        return choice

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise RuntimeError("device not opened")
        return self._backend

    async def underlay_mtu(self, node_ip: str | None) -> int:
        return await self._run(underlay_mtu, node_ip)

    async def ensure(self, spec: DeviceSpec, forwarding_versions: Sequence[int]) -> None:
        def work() -> None:
            self.backend.ensure_interface(spec)
            if forwarding_versions:
                enable_forwarding(self.ifname, forwarding_versions)

        await self._run(work)

    async def apply_peers(self, peers: Sequence[PeerSpec]) -> PeerPlan:
        return await self._run(self.backend.apply_peers, list(peers))

    async def read_state(self) -> DeviceState:
        return await self._run(self.backend.read_state)

    async def read_liveness(self) -> PeerLiveness:
        return await self._run(self.backend.read_liveness)

    async def index(self) -> int | None:
        return await self._run(interface_index, self.ifname)

    async def remove(self) -> None:
        await self._run(self.backend.remove_interface)

    async def close(self) -> None:
        if self._backend is not None:
            await self._run(self.backend.close)
        self._executor.shutdown(wait=True)
