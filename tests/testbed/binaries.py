"""Where the test bed's binaries live, and making sure they are there.

The binaries are built (kube-apiserver, kube-controller-manager, etcd) or
fetched (kubectl, helm) by the shell scripts next to this module into a
git-ignored cache; a second run finds them there and starts in seconds.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTBED_DIR = Path(__file__).resolve().parent

CACHE_DIR = Path(os.environ.get("REEF_CACHE", REPO_ROOT / ".cache")).resolve()
"""The git-ignored cache; ``$REEF_CACHE`` moves it (the scripts honour it too)."""

BIN_DIR = CACHE_DIR / "bin"

CONTROL_PLANE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
CLIENT_BINARIES = ("kubectl", "helm")


def binary(name: str) -> Path:
    """The cached binary `name`; never a same-named program from $PATH."""
    return BIN_DIR / name


def missing(names: tuple[str, ...]) -> list[str]:
    """The binaries among `names` that are not in the cache yet."""
    return [name for name in names if not os.access(binary(name), os.X_OK)]


def ensure_binaries() -> None:
    """Build or fetch whatever binary is missing from the cache.

    A cold build of the control plane takes 5-12 minutes; the scripts skip
    anything already built, so this is cheap when the cache is warm.
    """
    env = {**os.environ, "REEF_CACHE": str(CACHE_DIR)}
    if missing(CONTROL_PLANE_BINARIES):
        subprocess.run([str(TESTBED_DIR / "build-binaries.sh"), "all"], env=env, check=True)
    if missing(CLIENT_BINARIES):
        subprocess.run([str(TESTBED_DIR / "tools.sh")], env=env, check=True)
    still_missing = missing(CONTROL_PLANE_BINARIES + CLIENT_BINARIES)
    if still_missing:
        raise FileNotFoundError(
            f"test-bed binaries {still_missing} are still missing from {BIN_DIR} after "
            "running tests/testbed/build-binaries.sh and tests/testbed/tools.sh"
        )
