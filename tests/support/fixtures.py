"""Shared reef fixtures, a pytest plugin loaded by tests/conftest.py: CRDs, operators, networks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes.client
import pytest
from kubernetes.client import ApiClient

from tests.support.mesh import CRDS, MeshApi, ensure_namespace
from tests.support.operator_process import LEDGER_NAMESPACE, OperatorProcess
from tests.testbed.clients import KubeCLI


@pytest.fixture(scope="session")
def reef_crds(kubectl: KubeCLI) -> None:
    """reef's CRDs applied with kubectl, as a user would, and Established."""
    kubectl("apply", "-f", str(CRDS))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/meshnetworks.mesh.reef.dev",
        "crd/meshagents.mesh.reef.dev",
    )


@pytest.fixture(scope="session")
def ledger_namespace(kube_api: ApiClient) -> str:
    return ensure_namespace(kubernetes.client.CoreV1Api(kube_api), LEDGER_NAMESPACE)


@pytest.fixture
def mesh(kube_api: ApiClient, reef_crds: None) -> MeshApi:
    return MeshApi(kube_api)


@pytest.fixture
def operators(
    kubeconfig: Path, ledger_namespace: str, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """``operators(name="operator", env=None) -> OperatorProcess`` (not started yet)."""
    made: list[OperatorProcess] = []

    def make(name: str = "operator", env: dict[str, str] | None = None) -> OperatorProcess:
        process = OperatorProcess(
            kubeconfig, tmp_path, name=name, namespace=ledger_namespace, env=env
        )
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()


@pytest.fixture
def network(mesh: MeshApi, unique_name: Callable[[str], str]) -> Iterator[str]:
    """A unique MeshNetwork name; the network and its agents are removed afterwards."""
    name = unique_name("net")[:40].rstrip("-")
    yield name
    mesh.remove_network(name)
