"""How long one peer plan takes for a mesh of N members (pure CPU, no bed).

Every agent re-plans on each change of a member it can see, so this is the CPU each
node spends per membership change. Usage:

    python -m bench.peer_planning --members 5000 [--extras-every 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import ipaddress
import time

from bench.agent_common import print_command
from reef.agent.peers import plan_peers
from reef.api.models import MeshAgent, MeshNetworkSpec, parse_mesh_agent
from reef.dataplane import Key


def _member(index: int, key: Key, extras_every: int) -> MeshAgent:
    extras = [f"10.{index // 256}.{index % 256}.0/24"] if index % extras_every == 0 else []
    return parse_mesh_agent(
        {
            "metadata": {"name": f"n{index}", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"publicKey": key.public_key().base64(), "extraAllowedIPs": extras},
            "status": {"addresses": [str(ipaddress.ip_address("100.64.0.1") + index)]},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--extras-every", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print_command("bench.peer_planning")
    keys = [Key((index + 1).to_bytes(4, "big") * 8) for index in range(args.members)]
    members = [_member(i, k, args.extras_every) for i, k in enumerate(keys)]
    network = MeshNetworkSpec(cidrs=("100.64.0.0/10",), routablePrefixes=("10.0.0.0/8",))
    cluster = (ipaddress.ip_network("10.96.0.0/12"), ipaddress.ip_network("10.244.0.0/16"))
    timings = []
    for _ in range(args.runs):
        started = time.perf_counter()
        plan = plan_peers(
            members[0], keys[0].public_key(), members, network, cluster_prefixes=cluster
        )
        timings.append(time.perf_counter() - started)
    print(
        f"members={args.members} extras={len(members) // args.extras_every}"
        f" peers={len(plan.peers)} plan_seconds_min={min(timings):.3f}"
        f" plan_seconds_max={max(timings):.3f}"
    )


if __name__ == "__main__":
    main()
