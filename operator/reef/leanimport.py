"""Import a library's modules without running the package files that re-export all of it.

Some packages import nearly everything they contain in ``__init__`` to offer it under one
name: ``pyroute2`` (NDB, IPDB, nftables, ipset, ...) and ``kubernetes`` (every config
loader with requests and OAuth, the dynamic client, websockets streams, leader election).
The agent uses a few modules of each, and those package files were a third of its start
time (docs/benchmarks.md, "Where the agent's start time goes").

A submodule import needs its parent packages in ``sys.modules``. While the wanted modules
load, each named package not yet imported stands there as an unexecuted module made from
its own spec (same name, same ``__path__``); afterwards it is taken out again, so a later
plain ``import kubernetes`` anywhere in the process runs the real package file and reuses
the modules loaded here. A package already imported (tests, the operator, the CLI) is
used as it is: then this is a plain import.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType


def import_skipping_package_init(
    packages: Sequence[str], modules: Sequence[str]
) -> list[ModuleType]:
    """``modules``, imported while ``packages`` (outermost first) skip their ``__init__``."""
    standing_in: list[str] = []
    try:
        for package in packages:
            if package in sys.modules:
                continue
            spec = importlib.util.find_spec(package)
            if spec is None or spec.submodule_search_locations is None:
                raise ImportError(f"no package named {package!r}", name=package)
            sys.modules[package] = importlib.util.module_from_spec(spec)
            standing_in.append(package)
        return [importlib.import_module(name) for name in modules]
    finally:
        for package in reversed(standing_in):
            del sys.modules[package]
