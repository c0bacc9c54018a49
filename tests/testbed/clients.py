"""The cluster a test run talks to, and the command-line clients pointed at it.

Tests never use a kubectl or helm from $PATH (on the shared machines
/usr/bin/kubectl is not even a real kubectl): only the cached binaries, and
only with the suite's own one-context kubeconfig.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.binaries import binary


@dataclass(frozen=True)
class KubeTarget:
    """The cluster under test."""

    kubeconfig: Path
    """A kubeconfig with exactly one context, which is its current context."""
    context: str
    server: str
    local_bed: bool
    """True for the bed this session started; False for a cluster named on the command line."""
    startup_seconds: float | None = None
    """How long the local bed took to become ready (None for an existing cluster)."""


class KubeCommandError(AssertionError):
    """A kubectl/helm call that was expected to succeed did not; says what it printed."""


@dataclass(frozen=True)
class KubeCLI:
    """kubectl or helm from the cache, always with the suite's kubeconfig.

    Call it with the remaining arguments: ``kubectl("get", "ns", "-o", "name")``.
    """

    program: Path
    kubeconfig: Path
    context_flag: str
    context: str

    @classmethod
    def kubectl(cls, target: KubeTarget) -> KubeCLI:
        return cls(binary("kubectl"), target.kubeconfig, "--context", target.context)

    @classmethod
    def helm(cls, target: KubeTarget) -> KubeCLI:
        return cls(binary("helm"), target.kubeconfig, "--kube-context", target.context)

    def argv(self, *args: str) -> list[str]:
        return [
            str(self.program),
            f"--kubeconfig={self.kubeconfig}",
            f"{self.context_flag}={self.context}",
            *args,
        ]

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the program; with `check`, a non-zero exit fails the test with its output."""
        result = subprocess.run(
            self.argv(*args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubeCommandError(
                f"{self.program.name} {' '.join(args)} exited with {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result
