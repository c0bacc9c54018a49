"""Fixtures for agent tests: the real operator, a MeshNetwork, namespace nodes with agents.

Tests here need root, iproute2, wireguard-go and wg (they skip with the reason
otherwise) and the control plane (the ``cluster`` marker comes with the fixtures).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.agent.bed import AgentBed, agent_bed
from tests.support.mesh import MeshApi
from tests.support.operator_process import OperatorProcess
from tests.testbed.clients import KubeTarget

MESH_CIDR = "100.64.0.0/24"


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "namespace nodes need root"
    for tool in ("ip", "wg", "wireguard-go", "ping"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install iproute2 wireguard-tools wireguard-go)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _unavailable()
    for item in items:
        if "tests/agent/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.netns)
            if reason is not None and "bed" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def operator(operators: Callable[..., OperatorProcess]) -> OperatorProcess:
    """The real operator, started."""
    return operators().start()


@pytest.fixture
def bed(
    kube_target: KubeTarget,
    mesh: MeshApi,
    operator: OperatorProcess,
    network: str,
    tmp_path: Path,
) -> Iterator[Callable[..., AgentBed]]:
    """``bed(names, **network_spec) -> AgentBed``: a MeshNetwork and namespace nodes."""
    with ExitStack() as stack:

        def make(names: list[str], **spec: Any) -> AgentBed:
            mesh.create_network(network, [MESH_CIDR], reuseCooldown="0s", **spec)
            return stack.enter_context(
                agent_bed(kube_target.kubeconfig, kube_target.server, network, tmp_path, names)
            )

        yield make
