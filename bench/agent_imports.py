"""Benchmark: what importing the agent's start path costs — wall time, modules, memory.

Each run is a fresh interpreter that imports what ``reef agent`` loads before it
registers, plus the dataplane modules it opens meanwhile, and reports the time, the
number of modules and its resident set. The ``reef`` imported is the one on PYTHONPATH,
so two trees compare with two runs. Run::

    python -m bench.agent_imports --runs 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from bench.agent_common import print_command

PROBE = """
import time
started = time.perf_counter()
import reef.agent.main, reef.agent.device, reef.dataplane.select
elapsed = time.perf_counter() - started
import json, re, sys
rss = int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read())[1])
print(json.dumps({"seconds": elapsed, "modules": len(sys.modules), "rss_kib": rss,
                  "reef": sys.modules["reef"].__file__}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    arguments = parser.parse_args()
    samples = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(arguments.runs)
    ]
    print_command("bench.agent_imports")
    print(f"reef from {samples[0]['reef']}; runs: {arguments.runs}")
    seconds = [s["seconds"] * 1000 for s in samples]
    print(f"import: p50 {statistics.median(seconds):.0f} ms, min {min(seconds):.0f} ms")
    print(f"modules: {samples[0]['modules']}")
    print(f"RSS after import: {statistics.median(s['rss_kib'] for s in samples) / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
