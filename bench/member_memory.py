"""What each member of the mesh costs an agent in memory: its MeshAgent cache and its
peer planner, at N members (pure, no bed).

Every agent caches every MeshAgent of its network and plans peers from them, so this is
memory each node pays per member of the mesh. The members are JSON as the API server
sends them: one template (spec, an agent status with dataplane and three health
conditions, the operator's addresses and Allocated condition, and the managedFields
records of the three writers, shaped as kube-apiserver v1.36 returns them), with a
distinct name, key, endpoint and address per member. Each mode runs in a fresh
interpreter and reports the resident-set growth (VmRSS) of:

- ``cache``: the bodies as the informer keeps them;
- ``planner``: the agent's planner fed all of them and one plan made.

Modes: ``whole`` (the bodies as received), ``no-managed-fields`` (what the informer kept
before the member view), ``member-view`` (:func:`reef.agent.watches.member_view` after
dropping managedFields, 2026-12-02 to 12-04), ``member-record`` (today:
:func:`reef.agent.watches.member_record`, the record the planner then keeps as well).
Run::

    python -m bench.member_memory --members 1000 5000
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
from typing import Any

from bench.agent_common import print_command

MODES = ("whole", "no-managed-fields", "member-view", "member-record")


def _condition(kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "reason": "Configured",
        "message": "interface wg-reef up with every peer",
        "lastTransitionTime": "2026-12-02T18:52:52Z",
        "observedGeneration": 1,
    }


_CONDITION_FIELDS: dict[str, dict[str, Any]] = {
    ".": {},
    "f:lastTransitionTime": {},
    "f:message": {},
    "f:observedGeneration": {},
    "f:reason": {},
    "f:status": {},
    "f:type": {},
}


def _managed(manager: str, fields: dict[str, Any], subresource: str | None) -> dict[str, Any]:
    entry = {
        "apiVersion": "mesh.reef.dev/v1alpha1",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        "manager": manager,
        "operation": "Apply",
        "time": "2026-12-02T18:52:52Z",
    }
    return entry | ({"subresource": subresource} if subresource else {})


def member(index: int) -> bytes:
    """Member ``index`` as the wire carries it."""
    name = f"node-{index:05d}"
    address = f"100.64.{index // 256}.{index % 256}"
    health = ("Ready", "Configured", "PeersHealthy")
    body = {
        "apiVersion": "mesh.reef.dev/v1alpha1",
        "kind": "MeshAgent",
        "metadata": {
            "name": name,
            "uid": f"{index:08d}-8919-48f0-9b16-5dcf4a141df5",
            "resourceVersion": str(100000 + index),
            "generation": 1,
            "creationTimestamp": "2026-12-02T18:52:52Z",
            "finalizers": ["mesh.reef.dev/release"],
            "managedFields": [
                _managed(
                    "reef-agent",
                    {
                        "f:metadata": {"f:finalizers": {'v:"mesh.reef.dev/release"': {}}},
                        "f:spec": {"f:endpoint": {}, "f:nodeName": {}, "f:publicKey": {}},
                    },
                    None,
                ),
                _managed(
                    "reef-agent",
                    {
                        "f:status": {
                            "f:conditions": {
                                f'k:{{"type":"{kind}"}}': dict(_CONDITION_FIELDS) for kind in health
                            },
                            "f:dataplane": {
                                "f:backend": {},
                                "f:configuredAddresses": {},
                                "f:interface": {},
                                "f:lastSync": {},
                                "f:listenPort": {},
                                "f:peers": {"f:healthy": {}, "f:total": {}},
                            },
                        }
                    },
                    "status",
                ),
                _managed(
                    "reef-operator",
                    {
                        "f:status": {
                            "f:addresses": {},
                            "f:allocatedAt": {},
                            "f:conditions": {'k:{"type":"Allocated"}': dict(_CONDITION_FIELDS)},
                        }
                    },
                    "status",
                ),
            ],
        },
        "spec": {
            "network": "default",
            "role": "Agent",
            "nodeName": name,
            "publicKey": base64.b64encode(index.to_bytes(4, "big") + bytes(28)).decode(),
            "endpoint": f"10.{index // 65536}.{(index // 256) % 256}.{index % 256}:51820",
        },
        "status": {
            "addresses": [address],
            "allocatedAt": "2026-12-02T18:52:52Z",
            "conditions": [_condition("Allocated"), *map(_condition, health)],
            "dataplane": {
                "backend": "userspace",
                "interface": "wg-reef",
                "configuredAddresses": [f"{address}/32"],
                "listenPort": 51820,
                "peers": {"total": 4999, "healthy": 4999},
                "lastSync": "2026-12-02T18:52:52Z",
            },
        },
    }
    return json.dumps(body).encode()


PROBE = """
import gc, json, re, sys
from bench.member_memory import member
from reef.agent.informer import without_managed_fields
from reef.agent.peer_planner import PeerPlanner
from reef.agent.watches import member_record, member_view
from reef.api.records import read_mesh_agent, read_mesh_network
from reef.dataplane.keys import Key

def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024

count, mode = int(sys.argv[1]), sys.argv[2]
me = "node-00000"
view = member_record(me) if mode == "member-record" else member_view(me)
gc.collect()
before = rss()
cache = {}
for index in range(count):
    body = json.loads(member(index))
    name = body["metadata"]["name"]
    if mode != "whole":
        body = without_managed_fields(body)
    if mode.startswith("member-"):
        body = view(body)
    cache[name] = body
gc.collect()
cached = rss()
planner = PeerPlanner()
planner.set_members(cache)
network = read_mesh_network(
    {"metadata": {"name": "default"}, "spec": {"cidrs": ["100.64.0.0/10"]}}
)
plan = planner.plan(read_mesh_agent(cache[me]), Key.generate(), network.spec)
gc.collect()
print(json.dumps({"cache": cached - before, "planner": rss() - cached, "peers": len(plan.peers)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1000, 5000])
    arguments = parser.parse_args()
    print_command("bench.member_memory")
    print(f"{'members':>8} {'mode':>18} {'cache MiB':>10} {'planner MiB':>12} {'KiB/member':>11}")
    for count in arguments.members:
        for mode in MODES:
            output = subprocess.run(
                [sys.executable, "-c", PROBE, str(count), mode],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(output)
            total = result["cache"] + result["planner"]
            print(
                f"{count:>8} {mode:>18} {result['cache']:>10.1f} {result['planner']:>12.1f}"
                f" {total * 1024 / count:>11.1f}   ({result['peers']} peers planned)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
