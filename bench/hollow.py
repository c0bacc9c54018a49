"""Hollow agents: the real reef agent code, several per process, with an in-memory device.

Each hollow agent is :class:`reef.agent.agent.Agent` as ``reef agent`` runs it — its own
API client, informers, peer planner, status reporter and rate limits — except that the
WireGuard device is :class:`MemoryDevice` (the name ``Device`` in ``reef.agent.agent`` is
replaced before the agents are built, so the agent code is not edited). Like Kubernetes'
hollow nodes (kubemark), they load the API the way real agents do, at a scale this
machine cannot give real interfaces.

The device behaves like a healthy mesh: every configured peer shows a fresh handshake
and growing rx bytes (renewed every :data:`REKEY_SECONDS`, as WireGuard re-keys), so the
agents' status stays what it would be on a working mesh (no flapping PeersHealthy).

Counters, per agent, for the benchmark (bench.agent_scale), kept by wrapping methods of
the agent's classes in this process only: watch events the informers received (and how
many woke the loop), syncs, and API writes (every non-GET request). The parent talks to
this process by JSON lines: on stdin ``{"id": 1, "cmd": "stats"}`` or
``{"id": 2, "cmd": "routed", "keys": [...]}``; on stdout the replies, and
``{"peers": agent, "n": count, "t": monotonic}`` after each device change. Run by
bench.agent_scale as ``python -m bench.hollow --count 25 --prefix h0-`` with REEF_*
settings in the environment; also works with an older reef on PYTHONPATH (the
before/after figures), which is why the hooks look names up instead of importing them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import reef.agent.agent as agent_module
import reef.agent.informer as informer_module
import reef.agent.main as main_module
import reef.kube.client as client_module
from reef.dataplane import DeviceSpec, DeviceState, PeerSpec
from reef.dataplane.diff import PeerPlan, diff_peers
from reef.dataplane.select import BackendChoice
from reef.dataplane.spec import PeerState
from reef.settings import AgentSettings

#: A live WireGuard session re-keys every 120 s; the fake handshakes are renewed sooner.
REKEY_SECONDS = 60.0


def emit(message: dict[str, Any]) -> None:
    """One JSON line to the parent (only ever called from the event loop's thread)."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class MemoryDevice:
    """The agent's :class:`reef.agent.device.Device`, kept in memory."""

    def __init__(self, ifname: str, started: object = None) -> None:
        # ``started``: a wireguard-go the early step handed over; hollow agents have none.
        self.ifname = ifname
        self.agent = ifname  # renamed by the process to the agent's node name
        self.choice = BackendChoice("userspace", "in-memory device (bench.hollow)")
        self._public_key: Any = None
        self._listen_port = 0
        self._peers: dict[Any, PeerSpec] = {}
        self._configured = False
        #: Monotonic time each public key was first applied with allowed IPs (the end of a
        #: join's clock: a member is a peer, without routes, from before its allocation).
        self.routed: dict[str, float] = {}
        self._state: DeviceState | None = None
        self._liveness: dict[bytes, tuple[float, int]] = {}
        self._rekeyed_at = time.monotonic()
        self._handshake = datetime.now(UTC).timestamp()
        self._rx = 0

    async def open(self, override: Any = None) -> BackendChoice:
        return self.choice

    async def underlay_mtu(self, node_ip: str | None) -> int:
        return 1500

    async def ensure(self, spec: DeviceSpec, forwarding_versions: Sequence[int]) -> None:
        self._public_key = spec.private_key.public_key()
        self._listen_port = spec.listen_port
        self._configured = True
        if spec.peers is not None:
            self._set_peers(spec.peers)

    async def apply_peers(self, peers: Sequence[PeerSpec]) -> PeerPlan:
        # As the userspace backend does (KnownPeers): the diff is against the specs last
        # written, and only the plan's peers are touched. The device's own work (the
        # kernel's, wireguard-go's) is not the agent's: until 2026-12-08 this stand-in
        # rebuilt all 5000 peers as states on every change and again at the next health
        # check, and 25 agents to a process made that, not the agent, the cost of a join.
        plan = diff_peers(peers, self._peers)
        if plan.empty:
            return plan
        now = time.monotonic()
        for key in plan.remove:
            self._peers.pop(key, None)
            self._liveness.pop(key.raw, None)
        for peer in [*plan.add, *(update.peer for update in plan.update)]:
            self._peers[peer.public_key] = peer
            self._liveness[peer.public_key.raw] = (self._handshake, self._rx)
            if peer.allowed_ips:
                self.routed.setdefault(peer.public_key.base64(), now)
        self._state = None
        emit({"peers": self.agent, "n": len(self._peers), "t": now})
        return plan

    def _set_peers(self, peers: Sequence[PeerSpec]) -> None:
        now = time.monotonic()
        self._peers = {peer.public_key: peer for peer in peers}
        for key, peer in self._peers.items():
            if peer.allowed_ips:
                self.routed.setdefault(key.base64(), now)
        self._state = None
        self._liveness = {key.raw: (self._handshake, self._rx) for key in self._peers}
        emit({"peers": self.agent, "n": len(self._peers), "t": now})

    def _rekey(self) -> None:
        """Every peer handshakes anew each REKEY_SECONDS (and something arrives)."""
        now = time.monotonic()
        if now - self._rekeyed_at > REKEY_SECONDS:
            self._rekeyed_at = now
            self._rx += 1
            self._handshake = datetime.now(UTC).timestamp()
            self._liveness = {key.raw: (self._handshake, self._rx) for key in self._peers}
            self._state = None

    async def read_state(self) -> DeviceState:
        self._rekey()
        if self._state is None:
            handshake = datetime.fromtimestamp(self._handshake, tz=UTC)
            self._state = DeviceState(
                public_key=self._public_key,
                listen_port=self._listen_port,
                peers={
                    key: PeerState(
                        key,
                        p.allowed_ips,
                        p.endpoint,
                        p.persistent_keepalive,
                        last_handshake=handshake,
                        rx_bytes=self._rx,
                    )
                    for key, p in self._peers.items()
                },
            )
        return self._state

    async def read_liveness(self) -> dict[bytes, tuple[float, int]]:
        """What the agent's health check reads (reef.dataplane.spec.PeerLiveness)."""
        self._rekey()
        return dict(self._liveness)

    async def index(self) -> int | None:
        return 1 if self._configured else None

    async def remove(self) -> None:
        self._configured = False
        self._peers = {}

    async def close(self) -> None:
        return None


class Counters:
    """Per agent (keyed by its Kube client, which each agent has alone)."""

    def __init__(self) -> None:
        self.owner: dict[int, str] = {}
        self.events: collections.Counter[str] = collections.Counter()
        self.wakeups: collections.Counter[str] = collections.Counter()
        self.syncs: collections.Counter[str] = collections.Counter()
        self.writes: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def name(self, kube: Any) -> str:
        return self.owner.get(id(kube), "?")

    def write(self, kube: Any) -> None:
        with self._lock:  # requests run on the clients' worker threads
            self.writes[self.name(kube)] += 1

    def install(self) -> None:
        """Wrap the informer's event handler, the agent's sync and the API requests."""
        counters = self
        informer = informer_module.Informer
        # Every watch event passes through _hand_over on the informer's thread; an older
        # reef (--old in bench.agent_scale) handed each one to the loop's _apply instead.
        event_method = "_hand_over" if hasattr(informer, "_hand_over") else "_apply"
        original_hand_over = getattr(informer, event_method)
        original_init = informer.__init__

        def init(self: Any, kube: Any, plural: str, *args: Any, **kwargs: Any) -> None:
            on_change = args[2] if len(args) > 2 else kwargs["on_change"]
            agent_name = counters.name(kube)

            def counted_change() -> None:
                if plural != "nodes":
                    counters.wakeups[agent_name] += 1
                on_change()

            if len(args) > 2:
                args = (*args[:2], counted_change, *args[3:])
            else:
                kwargs["on_change"] = counted_change
            original_init(self, kube, plural, *args, **kwargs)
            self._bench_agent = agent_name if plural == "meshagents" else None

        def hand_over(self: Any, kind: str, body: Any) -> None:
            # every watch event, on the informer's thread: the irrelevant ones go no further
            if self._bench_agent is not None:
                counters.events[self._bench_agent] += 1
            original_hand_over(self, kind, body)

        informer.__init__ = init  # type: ignore[method-assign]
        setattr(informer, event_method, hand_over)

        original_sync = agent_module.Agent._sync

        async def sync(self: Any, *args: Any, **kwargs: Any) -> None:
            counters.syncs[self.settings.node_name] += 1
            await original_sync(self, *args, **kwargs)

        agent_module.Agent._sync = sync  # type: ignore[method-assign]
        kube = client_module.Kube
        if hasattr(kube, "request"):  # reef's own transport: every call is a request()
            original_request = kube.request

            def request(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
                if method != "GET":
                    counters.write(self)
                return original_request(self, method, *args, **kwargs)

            kube.request = request  # type: ignore[method-assign]
        else:  # an older reef: calls of the generated APIs through Kube.call
            original_call = kube.call

            async def call(self: Any, function: Callable[..., Any], *args: Any, **kw: Any) -> Any:
                name = getattr(function, "__name__", "")
                if name.startswith(("create", "patch", "replace", "delete")):
                    counters.write(self)
                return await original_call(self, function, *args, **kw)

            kube.call = call  # type: ignore[method-assign]

    def stats(self) -> dict[str, Any]:
        return {
            name: {
                "events": self.events[name],
                "wakeups": self.wakeups[name],
                "syncs": self.syncs[name],
                "writes": self.writes[name],
            }
            for name in self.owner.values()
        }


def build_kube(settings: AgentSettings) -> Any:
    workers = getattr(main_module, "API_WORKERS", 4)
    if hasattr(main_module, "agent_kube"):
        return main_module.agent_kube(settings, workers)
    return client_module.Kube(client_module.load_api_client(settings, workers), workers)


def build_settings(**overrides: Any) -> AgentSettings:
    return AgentSettings.from_environment(**overrides)


def build_agent(settings: AgentSettings, kube: Any) -> Any:
    agent = agent_module.Agent(settings, kube)
    device = agent.device
    assert isinstance(device, MemoryDevice), "reef.agent.agent.Device was not replaced"
    device.agent = settings.node_name
    return agent


async def serve(names: list[str], key_root: Path) -> int:
    counters = Counters()
    counters.install()
    setattr(agent_module, "Device", MemoryDevice)  # noqa: B010 (the agent module's name)
    agents = []
    for index, name in enumerate(names):
        settings = build_settings(
            node_name=name,
            interface=f"hollow{index}",
            key_dir=key_root / name,
            metrics_port=0,
            log_format="json",
        )
        kube = build_kube(settings)
        counters.owner[id(kube)] = name
        agents.append(build_agent(settings, kube))
    runs = [asyncio.ensure_future(agent.run()) for agent in agents]
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def handle(line: str) -> None:
        command = json.loads(line)
        reply: dict[str, Any] = {"reply": command.get("id")}
        if command["cmd"] == "stats":
            reply["agents"] = counters.stats()
        elif command["cmd"] == "routed":
            keys = command["keys"]
            reply["routed"] = {
                agent.settings.node_name: {k: agent.device.routed.get(k) for k in keys}
                for agent in agents
            }
        elif command["cmd"] == "stop":
            for agent in agents:
                agent.request_stop()
            done.set()
        emit(reply)

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(handle, line)
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=read_commands, daemon=True).start()
    await done.wait()
    for agent in agents:
        agent.request_stop()
    codes = await asyncio.gather(*runs, return_exceptions=True)
    for agent in agents:
        with_close = getattr(agent.kube, "close", None)
        if with_close is not None:
            with_close()
    return 0 if all(code in (0, None) for code in codes) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, required=True, help="hollow agents in this process")
    parser.add_argument("--prefix", required=True, help="their node names: PREFIX0, PREFIX1, ...")
    parser.add_argument("--key-root", type=Path, required=True, help="one key dir per agent below")
    arguments = parser.parse_args()
    # The agents' own log lines go to stderr (a file), stdout is the parent's channel.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    names = [f"{arguments.prefix}{i}" for i in range(arguments.count)]
    return asyncio.run(serve(names, arguments.key_root))


if __name__ == "__main__":
    raise SystemExit(main())
