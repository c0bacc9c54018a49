"""Fixtures for the install tests: the CRDs applied, and a Helm release per test."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.install.helm_release import Release, bed_values
from tests.support.mesh import CRDS
from tests.testbed.clients import KubeCLI


@pytest.fixture(scope="session")
def reef_crds(kubectl: KubeCLI) -> None:
    """The CRDs applied from crds/ with kubectl, as a user would, and Established."""
    kubectl("apply", "-f", str(CRDS))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/meshnetworks.mesh.reef.dev",
        "crd/meshagents.mesh.reef.dev",
    )


@pytest.fixture
def release(helm: KubeCLI, namespace: str, reef_crds: None, tmp_path: Path) -> Iterator[Release]:
    """A not yet installed release with test values; uninstalled afterwards if installed."""
    token = secrets.token_hex(3)
    made = Release(
        helm=helm,
        name=f"reef-{token}",
        namespace=namespace,
        network=f"net-{token}",
        workdir=tmp_path,
    )
    made.values = bed_values(made.network)
    try:
        yield made
    finally:
        made.uninstall()


@pytest.fixture
def node_names() -> Callable[[str], str]:
    """``node_names(label) -> str``: a Node name unique to this test run."""
    token = secrets.token_hex(3)
    return lambda label: f"node-{label}-{token}"
