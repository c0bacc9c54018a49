"""Fixtures for the install tests: a Helm release per test (``reef_crds`` comes from
tests/support/fixtures.py)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.install.helm_release import Release, bed_values
from tests.testbed.clients import KubeCLI


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
