"""What the periodic resync's read of a wireguard-go device costs the agent (pure, no bed).

Every ``REEF_RESYNC_SECONDS`` the agent re-ensures its interface and forgets what it
knows of the device's peers, so the next diff reads the whole device: the ``get=1``
answer of wireguard-go, decoded. Two decoders of the same answer (N peers in
wireguard-go's line order, each holding exactly what the agent wrote):

- ``whole``: every peer decoded into a ``PeerState`` (``uapi.decode_device_answer``;
  the userspace backend's read before 2026-12-08);
- ``against``: blocks compared as bytes with the desired specs, only differing peers
  decoded (``uapi.decode_peer_configs``, the read now).

Each runs in a fresh process (resident memory does not come back once the allocator has
the pages, so a process measures one decoder). Printed per decoder: wall ms of the read,
the Python heap's peak during it and what it keeps afterwards (tracemalloc, MiB), and
the process's resident memory before and after (MiB, /proc). Run::

    python -m bench.resync_read --members 5000
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.agent_common import print_command
from reef.dataplane import Endpoint, Key, PeerSpec, uapi

MODES = ("whole", "against")


def _specs(members: int) -> list[PeerSpec]:
    pool = ipaddress.ip_network("100.64.0.0/10")
    return [
        PeerSpec(
            Key(i.to_bytes(4, "big") * 8),
            (ipaddress.ip_network(f"{pool[i + 1]}/32"),),
            Endpoint.parse(f"192.0.2.{i % 250 + 1}:{51820 + i // 250}"),
            25,
        )
        for i in range(members)
    ]


def _answer(specs: list[PeerSpec]) -> bytes:
    """The ``get=1`` answer of a device holding ``specs``, in wireguard-go's order."""
    lines = [f"private_key={'11' * 32}", "listen_port=51820"]
    for n, spec in enumerate(specs):
        lines += [
            f"public_key={spec.public_key.hex()}",
            "protocol_version=1",
            f"endpoint={spec.endpoint}",
            f"last_handshake_time_sec={1_800_000_000 + n}",
            "last_handshake_time_nsec=500",
            f"tx_bytes={n * 148}",
            f"rx_bytes={n * 296}",
            f"persistent_keepalive_interval={spec.persistent_keepalive}",
        ]
        lines += [f"allowed_ip={net}" for net in spec.allowed_ips]
    return ("\n".join(lines) + "\nerrno=0\n\n").encode("ascii")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(mode: str, members: int) -> dict[str, Any]:
    specs = _specs(members)
    answer = _answer(specs)
    expected = {spec.public_key.raw: spec for spec in specs}
    rss_before = _rss_mib()
    tracemalloc.start()
    started = time.perf_counter()
    if mode == "whole":
        kept: object = uapi.decode_device_answer(answer).peers
    else:
        kept = uapi.decode_peer_configs(answer, expected)
    wall = time.perf_counter() - started
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(kept) == members  # type: ignore[arg-type]
    return {
        "mode": mode,
        "members": members,
        "wall_ms": wall * 1000,
        "peak_mib": peak / 2**20,
        "kept_mib": current / 2**20,
        "rss_before_mib": rss_before,
        "rss_after_mib": _rss_mib(),
        "answer_mib": len(answer) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(measure(arguments.one, arguments.members[0])))
        return
    print_command("bench.resync_read")
    for members in arguments.members:
        for mode in MODES:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.resync_read",
                    "--one",
                    mode,
                    "--members",
                    str(members),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(done.stdout)
            print(
                f"N={members} {mode:8} read {r['wall_ms']:7.1f} ms; heap peak {r['peak_mib']:5.2f}"
                f" MiB, kept {r['kept_mib']:5.2f} MiB; RSS {r['rss_before_mib']:.1f} ->"
                f" {r['rss_after_mib']:.1f} MiB (answer {r['answer_mib']:.2f} MiB)"
            )


if __name__ == "__main__":
    main()
