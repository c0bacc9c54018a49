"""What one health tick costs an agent with N peers (pure CPU, no bed, no API server).

Every ``REEF_HEALTH_CHECK_SECONDS`` (5 s) the agent wakes with nothing changed in the API,
reads handshake ages and received bytes from its WireGuard device and decides
PeersHealthy. That is :meth:`reef.agent.agent.Agent._sync` with ``force=False``, which is
what is timed here: the real :class:`~reef.agent.agent.Agent` (its peer planner, device
configurator, reporter, status rate limit), with its informers' caches filled with N
MeshAgents (bench.peer_planning's members), a stand-in API client that counts writes, and
an in-memory device (the name ``Device`` in ``reef.agent.agent`` is replaced, as
bench.hollow does) holding the N peers the agent configured. Between ticks (untimed) the
device moves as a live mesh does in 5 s: 1/24 of the peers re-key (a fresh handshake;
WireGuard re-keys every 120 s) and 1/5 receive something (a keepalive every 25 s); every
handshake starts 0-120 s old, so every peer stays healthy and nothing is to be written.

Device modes:

- ``memory``: the device hands over its peer states as values (bench.hollow's device: what
  the agent's own code costs);
- ``uapi``: the device answers with the text wireguard-go sends for ``get=1`` and the
  userspace backend's decoding runs in the tick (what a real agent on wireguard-go pays;
  the socket round trip itself is not counted). Kernel netlink (pyroute2) is not measured.

Per N and mode it prints p50/p99 wall ms and CPU ms (process time) per tick, and what the
ticks did that they must not: status writes, Events, peer re-plans (the planner assembling
a plan) and device writes. Run::

    python -m bench.health_tick --members 1000 5000 [--ticks 50] [--modes memory uapi]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import reef.agent.agent as agent_module
from bench.agent_common import percentile, print_command
from bench.peer_planning import _body
from reef.agent import bootstrap
from reef.agent.peer_planner import PeerPlanner
from reef.agent.peers import PeerSetPlan
from reef.dataplane import DeviceSpec, DeviceState, Key, PeerSpec, uapi
from reef.dataplane.diff import PeerPlan, diff_peers
from reef.dataplane.select import BackendChoice
from reef.dataplane.spec import PeerState
from reef.settings import AgentSettings

NETWORK = "mesh"
ME = "n0"
REKEY_SHARE = 24  # 120 s re-key / 5 s tick
KEEPALIVE_SHARE = 5  # 25 s keepalive / 5 s tick

Body = dict[str, Any]


class _Cache:
    """What the agent reads of an informer: ``objects`` and ``take_changes``."""

    def __init__(self, objects: dict[str, Body]) -> None:
        self.objects = objects
        self._changes: set[str] | None = None

    def take_changes(self) -> set[str] | None:
        changes, self._changes = self._changes, set()
        return changes


class _Kube:
    """The API as far as a sync reaches it: status applies (echoed into the cache, as the
    watch would) and Events, counted."""

    def __init__(self) -> None:
        self.cache: _Cache | None = None
        self.status_writes = 0
        self.posts = 0

    async def call(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.posts += 1
        return {}

    def request_json(self, *args: Any, **kwargs: Any) -> Any:
        return {}

    async def apply_status(
        self, plural: str, name: str, status: dict[str, Any], *, manager: str
    ) -> Body:
        self.status_writes += 1
        assert self.cache is not None
        body = dict(self.cache.objects[name])
        old = dict(body.get("status") or {})
        conditions = {c["type"]: c for c in old.get("conditions") or []}
        conditions.update({c["type"]: c for c in status.get("conditions") or []})
        body["status"] = {**old, **status, "conditions": list(conditions.values())}
        body["metadata"] = {**body["metadata"], "resourceVersion": f"w{self.status_writes}"}
        self.cache.objects[name] = body
        return body


class _Device:
    """The agent's Device in memory, with a mesh that moves between ticks."""

    mode = "memory"

    def __init__(self, ifname: str, started: object = None) -> None:
        # ``started``: a wireguard-go the early step handed over; none here.
        self.ifname = ifname
        self.choice = BackendChoice("userspace", "in-memory device (bench.health_tick)")
        self.private: Key | None = None
        self.listen_port = 0
        self.writes = 0
        self._specs: dict[Key, PeerSpec] = {}
        self._states: dict[Key, PeerState] = {}
        self._blocks: dict[Key, str] = {}
        self._live: dict[bytes, tuple[float, int]] = {}
        self._handshake: dict[Key, float] = {}
        self._rx: dict[Key, int] = {}
        self._answer = b""
        self._turn = 0
        self._random = random.Random(10)

    async def open(self, override: Any = None) -> BackendChoice:
        return self.choice

    async def underlay_mtu(self, node_ip: str | None) -> int:
        return 1500

    async def ensure(self, spec: DeviceSpec, forwarding_versions: Sequence[int]) -> None:
        self.private, self.listen_port = spec.private_key, spec.listen_port
        if spec.peers is not None:
            self._set_peers(spec.peers)

    async def apply_peers(self, peers: Sequence[PeerSpec]) -> PeerPlan:
        plan = diff_peers(peers, {k: PeerState(k, **_config(s)) for k, s in self._specs.items()})
        self._set_peers(peers)
        return plan

    def _set_peers(self, peers: Sequence[PeerSpec]) -> None:
        self.writes += 1
        self._specs = {peer.public_key: peer for peer in peers}
        now = time.time()
        for key in self._specs:
            self._handshake.setdefault(key, now - self._random.uniform(0, 120))
            self._rx.setdefault(key, self._random.randrange(1 << 20, 1 << 30))
            self._render(key)
        self._encode()

    def _render(self, key: Key) -> None:
        spec = self._specs[key]
        seconds = self._handshake[key]
        self._states[key] = PeerState(
            key,
            **_config(spec),
            last_handshake=datetime.fromtimestamp(seconds, tz=UTC),
            rx_bytes=self._rx[key],
            tx_bytes=self._rx[key] // 2,
        )
        self._live[key.raw] = (seconds, self._rx[key])
        if self.mode == "uapi":  # in wireguard-go's order (device/uapi.go)
            lines = [f"public_key={key.hex()}", "protocol_version=1"]
            if spec.endpoint is not None:
                lines.append(f"endpoint={spec.endpoint}")
            lines += [
                f"last_handshake_time_sec={int(seconds)}",
                f"last_handshake_time_nsec={int(seconds % 1 * 1e9)}",
                f"tx_bytes={self._rx[key] // 2}",
                f"rx_bytes={self._rx[key]}",
                f"persistent_keepalive_interval={spec.persistent_keepalive}",
            ]
            lines += [f"allowed_ip={net}" for net in spec.allowed_ips]
            self._blocks[key] = "\n".join(lines)

    def _encode(self) -> None:
        if self.mode == "uapi":
            assert self.private is not None
            head = f"private_key={self.private.hex()}\nlisten_port={self.listen_port}\n"
            body = "\n".join(self._blocks[key] for key in self._specs)
            self._answer = f"{head}{body}\nerrno=0\n\n".encode("ascii")

    def move(self) -> None:
        """Five seconds of a live mesh: some peers re-key, some receive a keepalive."""
        keys = list(self._specs)
        if not keys:
            return
        now = time.time()
        self._turn += 1
        for index, key in enumerate(keys):
            renewed = index % REKEY_SHARE == self._turn % REKEY_SHARE
            heard = index % KEEPALIVE_SHARE == self._turn % KEEPALIVE_SHARE
            if renewed:
                self._handshake[key] = now
            if renewed or heard:
                self._rx[key] += 148
                self._render(key)
        self._encode()

    async def read_state(self) -> DeviceState:
        if self.mode == "uapi":
            return uapi.decode_device(uapi.decode_response(self._answer))
        assert self.private is not None
        return DeviceState(self.private.public_key(), self.listen_port, dict(self._states))

    async def read_liveness(self) -> dict[bytes, tuple[float, int]]:
        if self.mode == "uapi":
            return uapi.decode_liveness(self._answer)
        return dict(self._live)

    async def index(self) -> int | None:
        return 1 if self.private is not None else None

    async def remove(self) -> None:
        self.private = None

    async def close(self) -> None:
        return None


class _UapiDevice(_Device):
    mode = "uapi"


def _config(spec: PeerSpec) -> dict[str, Any]:
    return {
        "allowed_ips": spec.allowed_ips,
        "endpoint": spec.endpoint,
        "persistent_keepalive": spec.persistent_keepalive,
    }


def _network() -> Body:
    return {
        "apiVersion": "mesh.reef.dev/v1alpha1",
        "kind": "MeshNetwork",
        "metadata": {"name": NETWORK, "uid": "net-uid", "resourceVersion": "1"},
        "spec": {"cidrs": ["100.64.0.0/10"], "routablePrefixes": ["10.0.0.0/8"]},
        "status": {"clusterPrefixes": ["10.96.0.0/12", "10.244.0.0/16"]},
    }


def _members(count: int) -> dict[str, Body]:
    bodies = {}
    for index in range(count + 1):  # the agent's own MeshAgent and ``count`` peers
        body = _body(index, extras_every=10)
        body["metadata"] |= {"uid": f"uid-{index}", "generation": 1}
        body["spec"] |= {"network": NETWORK}
        body["status"]["conditions"] = [
            {"type": "Allocated", "status": "True", "reason": "Allocated", "message": "ok"}
        ]
        bodies[body["metadata"]["name"]] = body
    return bodies


class _Counted:
    """How often the planner assembled a plan (a re-plan; a tick must not cause one)."""

    assembled = 0

    @classmethod
    def install(cls) -> None:
        original = PeerPlanner._assemble

        def assemble(planner: PeerPlanner) -> PeerSetPlan:
            cls.assembled += 1
            return original(planner)

        setattr(PeerPlanner, "_assemble", assemble)  # noqa: B010 (wrapped in this process only)


async def _agent(members: int, device: type[_Device]) -> tuple[agent_module.Agent, _Kube, _Device]:
    setattr(agent_module, "Device", device)  # noqa: B010 (the agent module's name)
    settings = AgentSettings.from_environment(
        {}, node_name=ME, network=NETWORK, endpoint="198.18.0.0:51820", metrics_port=0
    )
    kube = _Kube()
    agent = agent_module.Agent(settings, kube)  # type: ignore[arg-type]
    watches = agent._watches
    bodies = _members(members)
    watches.agents = kube.cache = _Cache(bodies)  # type: ignore[assignment]
    watches.networks = _Cache({NETWORK: _network()})  # type: ignore[assignment]
    watches.nodes = _Cache({})  # type: ignore[assignment]
    agent._key = Key((1).to_bytes(4, "big") * 8)  # n0's key in bench.peer_planning
    network = watches.network()
    assert network is not None
    wanted = bootstrap.wanted_registration(settings, agent._key, watches, network)
    patch = wanted.spec_patch(bodies[ME])
    bodies[ME]["spec"] |= patch.get("spec", {})
    bodies[ME]["metadata"] |= patch.get("metadata", {})
    await agent._sync(force=True)  # configures the device with every peer, first report
    assert agent._config.configured, agent._config.error
    await agent._sync(force=False)
    assert isinstance(agent.device, _Device)
    return agent, kube, agent.device


def _ms(value: float) -> str:
    return f"{value * 1000:.3f}"


async def measure(members: int, mode: str, ticks: int) -> str:
    counted = _Counted
    device_class = _UapiDevice if mode == "uapi" else _Device
    agent, kube, device = await _agent(members, device_class)
    writes, posts, planned, device_writes = (
        kube.status_writes,
        kube.posts,
        counted.assembled,
        device.writes,
    )
    walls, cpus = [], []
    for _ in range(ticks):
        device.move()
        wall, cpu = time.perf_counter(), time.process_time()
        await agent._sync(force=False)
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    peers = agent._reporter._status._pending  # a coalesced write would wait here
    plan = agent._plan
    return (
        f"members={members} mode={mode} peers={len(plan.peers)} ticks={ticks}"
        f" p50_ms={_ms(statistics.median(walls))} p99_ms={_ms(percentile(walls, 0.99))}"
        f" cpu_ms_p50={_ms(statistics.median(cpus))} cpu_ms_mean={_ms(statistics.mean(cpus))}"
        f" status_writes={kube.status_writes - writes} events={kube.posts - posts}"
        f" replans={counted.assembled - planned} device_writes={device.writes - device_writes}"
        f" pending_write={peers is not None}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument(
        "--modes", nargs="+", choices=("memory", "uapi"), default=["memory", "uapi"]
    )
    parser.add_argument("--ticks", type=int, default=50)
    args = parser.parse_args()
    print_command("bench.health_tick")
    _Counted.install()
    for members in args.members:
        for mode in args.modes:
            print(asyncio.run(measure(members, mode, args.ticks)), flush=True)


if __name__ == "__main__":
    main()
