"""How long peer planning takes for a mesh of N members (pure CPU, no bed).

Every agent plans again when a member it can see changes, so this is the CPU each node
spends per membership change. For each N it prints:

- ``full``: one whole plan from parsed members (:func:`reef.agent.peers.plan_peers`), the
  best of ``--runs`` (the texts it parses are cached by then, as in an agent re-planning
  after a change of its own spec or of a resolved name);
- ``full_first``: the same, the first time (nothing cached: ``reef join``, an agent's start);
- ``cold``: the agent's planner from nothing: parse N MeshAgent bodies, read, decide;
- ``update``: one member's change (a new endpoint, so a new resourceVersion) handed to
  the agent's planner and the plan asked for (median and max of ``--updates`` changes);
- ``join`` / ``leave``: a new member added / one deleted, the same way;
- ``unchanged``: a plan asked for with nothing changed (a health tick).

Usage:

    python -m bench.peer_planning [--members 1000 5000 10000] [--extras-every 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import statistics
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from bench.agent_common import print_command
from reef.agent.peer_planner import PeerPlanner
from reef.agent.peers import forget_parsed_texts, plan_peers
from reef.api.records import MeshNetworkSpec, read_mesh_agent
from reef.dataplane import Key

NETWORK = MeshNetworkSpec(cidrs=("100.64.0.0/10",), routable_prefixes=("10.0.0.0/8",))
CLUSTER = (ipaddress.ip_network("10.96.0.0/12"), ipaddress.ip_network("10.244.0.0/16"))


def _body(index: int, extras_every: int) -> dict[str, Any]:
    key = Key((index + 1).to_bytes(4, "big") * 8)
    extras = [f"10.{index // 256}.{index % 256}.0/24"] if index % extras_every == 0 else []
    return {
        "metadata": {
            "name": f"n{index}",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "resourceVersion": "1",
        },
        "spec": {
            "publicKey": key.public_key().base64(),
            "endpoint": f"198.18.{index // 256}.{index % 256}:51820",
            "extraAllowedIPs": extras,
        },
        "status": {"addresses": [str(ipaddress.ip_address("100.64.0.1") + index)]},
    }


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _change(
    planner: PeerPlanner,
    name: str,
    body: dict[str, Any] | None,
    ask: Callable[[PeerPlanner], object],
) -> object:
    """One member's change handed to the planner (None: deleted), then the plan."""
    planner.set_member(name, body)
    return ask(planner)


def _cold(
    planner: PeerPlanner, bodies: Mapping[str, dict[str, Any]], ask: Callable[[PeerPlanner], object]
) -> object:
    """Every member handed to a new planner at once (an agent's start), then the plan."""
    planner.set_members(bodies)
    return ask(planner)


def _ms(value: float) -> str:
    return f"{value * 1000:.3f}"


def measure(members: int, extras_every: int, runs: int, updates: int) -> str:
    bodies = {f"n{i}": _body(i, extras_every) for i in range(members)}
    agents = [read_mesh_agent(body) for body in bodies.values()]
    me = agents[0]
    my_key = Key((1).to_bytes(4, "big") * 8).public_key()

    def full() -> object:
        return plan_peers(me, my_key, agents, NETWORK, cluster_prefixes=CLUSTER)

    def ask(planner: PeerPlanner) -> object:
        return planner.plan(me, my_key, NETWORK, cluster_prefixes=CLUSTER)

    forget_parsed_texts()
    full_times = [_seconds(full) for _ in range(runs)]
    cold_times = []
    planner = PeerPlanner()
    for _ in range(runs):
        planner = PeerPlanner()
        forget_parsed_texts()
        cold_times.append(_seconds(partial(_cold, planner, bodies, ask)))
    peers = len(planner.plan(me, my_key, NETWORK, cluster_prefixes=CLUSTER).peers)

    update_times, join_times, leave_times = [], [], []
    for step in range(updates):
        changed = copy.deepcopy(bodies[f"n{1 + step * (members - 1) // updates}"])
        changed["metadata"]["resourceVersion"] = f"u{step}"
        changed["spec"]["endpoint"] = f"198.19.{step // 256}.{step % 256}:51820"
        update_times.append(
            _seconds(partial(_change, planner, changed["metadata"]["name"], changed, ask))
        )
    for step in range(updates):
        joiner = _body(members + step, extras_every)
        join_times.append(
            _seconds(partial(_change, planner, joiner["metadata"]["name"], joiner, ask))
        )
    for step in range(updates):
        gone = f"n{members + step}"
        leave_times.append(_seconds(partial(_change, planner, gone, None, ask)))
    unchanged = min(_seconds(partial(ask, planner)) for _ in range(runs))
    return (
        f"members={members} extras={members // extras_every} peers={peers}"
        f" full_ms={_ms(min(full_times))} full_first_ms={_ms(full_times[0])}"
        f" cold_ms={_ms(min(cold_times))}"
        f" update_ms_median={_ms(statistics.median(update_times))}"
        f" update_ms_max={_ms(max(update_times))}"
        f" join_ms_median={_ms(statistics.median(join_times))}"
        f" leave_ms_median={_ms(statistics.median(leave_times))}"
        f" unchanged_ms={_ms(unchanged)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--extras-every", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--updates", type=int, default=50)
    args = parser.parse_args()
    print_command("bench.peer_planning")
    for members in args.members:
        print(measure(members, args.extras_every, args.runs, args.updates), flush=True)


if __name__ == "__main__":
    main()
