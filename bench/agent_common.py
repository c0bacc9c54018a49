"""Shared set-up of the agent benchmarks: bed, CRDs, operator, network, namespace nodes."""

from __future__ import annotations

import compileall
import contextlib
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import kubernetes.config
import yaml

import reef
from reef.settings import AgentSettings
from tests.agent.bed import AgentBed, agent_bed
from tests.support.mesh import CRDS, MeshApi
from tests.support.operator_process import LEDGER_NAMESPACE, OperatorProcess
from tests.testbed.binaries import binary, ensure_binaries
from tests.testbed.controlplane import LocalControlPlane

CHART_VALUES = Path(__file__).resolve().parent.parent / "charts" / "reef" / "values.yaml"


def chart_timers() -> dict[str, str]:
    """The agent's timers as the chart sets them (the test bed checks health and may
    report status every second, to keep tests short), as REEF_* variables."""
    values = yaml.safe_load(CHART_VALUES.read_text())["agent"]
    return {
        # the chart leaves the health check at the agent's default
        "REEF_HEALTH_CHECK_SECONDS": str(
            AgentSettings.from_environment({}, node_name="-").health_check_seconds
        ),
        "REEF_STATUS_MIN_INTERVAL_SECONDS": str(values["statusMinIntervalSeconds"]),
        "REEF_RESYNC_SECONDS": str(values["resyncSeconds"]),
    }


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (wireguard-go runs in its own session, still our child)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def record_time(record: dict[str, object]) -> float:
    """Wall-clock time of an agent's JSON log record (same machine, same clock)."""
    return datetime.fromisoformat(str(record["time"])).timestamp()


def print_command(module: str) -> None:
    print("command:", shlex.join(["python", "-m", module, *sys.argv[1:]]))


@contextlib.contextmanager
def bench_bed(names: Sequence[str], network: str = "bench") -> Iterator[AgentBed]:
    """Control plane + CRDs + operator + MeshNetwork 100.64.0.0/16 + namespace nodes."""
    # The agents run from this tree. Where PYTHONDONTWRITEBYTECODE is set, nothing caches
    # their bytecode and every start would compile reef's modules first, which an
    # installed agent (the image, compiled at install) never does: compile them now.
    compileall.compile_dir(Path(reef.__file__).parent, quiet=1)
    ensure_binaries()
    with LocalControlPlane() as plane, tempfile.TemporaryDirectory(prefix="reef-bench-") as tmp:
        workdir = Path(tmp)
        subprocess.run(
            [
                str(binary("kubectl")),
                "--kubeconfig",
                str(plane.kubeconfig),
                "apply",
                "-f",
                str(CRDS),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                str(binary("kubectl")),
                "--kubeconfig",
                str(plane.kubeconfig),
                "wait",
                "--for=condition=Established",
                "crd",
                "--all",
                "--timeout=60s",
            ],
            check=True,
            capture_output=True,
        )
        api = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
        mesh = MeshApi(api)
        import kubernetes.client as k8s

        mesh.core.create_namespace(
            k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=LEDGER_NAMESPACE))
        )
        operator = OperatorProcess(plane.kubeconfig, workdir).start()
        try:
            mesh.create_network(network, ["100.64.0.0/16"])
            with agent_bed(plane.kubeconfig, plane.server, network, workdir, names) as bed:
                bed.env["REEF_LOG_LEVEL"] = "INFO"
                yield bed
        finally:
            operator.stop()
