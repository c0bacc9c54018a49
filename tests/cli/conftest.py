"""Fixtures for CLI tests: the agent tests' bed (real operator, namespace nodes), and the
``reef`` CLI run as a user runs it — a separate process with a kubeconfig."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent.conftest import _unavailable, bed, operator
from tests.testbed.clients import KubeTarget

__all__ = ["bed", "cli", "operator"]

REPO = Path(__file__).resolve().parents[2]
#: The CLI runs from this tree, whatever else is installed.
PYTHONPATH = os.pathsep.join([str(REPO / "operator"), str(REPO)])

Run = Callable[..., subprocess.CompletedProcess[str]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _unavailable()
    for item in items:
        if "bed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.netns)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": PYTHONPATH, **extra}


@pytest.fixture
def cli(kube_target: KubeTarget) -> Run:
    """``cli(*args, check=True) -> CompletedProcess``: ``python -m reef ARGS`` with the
    suite's kubeconfig (``--kubeconfig`` after the verb, as a user would pass it)."""

    def run(
        *args: str, check: bool = True, timeout: float = 180.0
    ) -> subprocess.CompletedProcess[str]:
        verb, *rest = args
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "reef",
                verb,
                "--kubeconfig",
                str(kube_target.kubeconfig),
                *rest,
            ],
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"reef {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    return run
