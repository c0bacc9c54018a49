"""Import a library's modules without running the package files that re-export all of it.

Some packages import nearly everything they contain in ``__init__`` to offer it under one
name: ``pyroute2`` (NDB, IPDB, nftables, ipset, ...) and ``kubernetes`` (every config
loader with requests and OAuth, the dynamic client, websocket streams, leader election).
The agent uses a few modules of each, and those package files were a third of its
imports (docs/benchmarks.md, "Where the agent's start time and memory go").

A submodule import needs its parent packages in ``sys.modules``. Each named package not
yet imported is put there as a module made from its own spec (same name, same
``__path__``) whose package file has not run. It stays: both libraries import more of
their modules later, on first use (kubernetes' lazy ``client`` models and APIs,
pyroute2's link-kind plugins), and those imports must find the same parent. The package
file still runs, into that module, the first time something asks it for a name that is
no submodule (``kubernetes.__version__``, ``pyroute2.NDB``), so other code sees the
package it expects. A package already imported (tests, the operator, the CLI) is used
as it is: then this is a plain import.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_lock = threading.Lock()


def _deferred_package(spec: ModuleSpec) -> ModuleType:
    module = importlib.util.module_from_spec(spec)
    ran = False

    def __getattr__(name: str) -> Any:  # noqa: N807 (the module attribute hook's name)
        nonlocal ran
        if ran:
            raise AttributeError(f"module {spec.name!r} has no attribute {name!r}")
        if importlib.util.find_spec(f"{spec.name}.{name}") is not None:
            return importlib.import_module(f"{spec.name}.{name}")
        with _lock:
            if not ran:
                ran = True
                del module.__dict__["__getattr__"]
                assert spec.loader is not None
                spec.loader.exec_module(module)
        return getattr(module, name)

    module.__dict__["__getattr__"] = __getattr__
    return module


def import_skipping_package_init(
    packages: Sequence[str], modules: Sequence[str]
) -> list[ModuleType]:
    """``modules``, imported while ``packages`` (outermost first) skip their ``__init__``."""
    with _lock:
        for package in packages:
            if package in sys.modules:
                continue
            spec = importlib.util.find_spec(package)
            if spec is None or spec.submodule_search_locations is None or spec.loader is None:
                raise ImportError(f"no package named {package!r}", name=package)
            sys.modules[package] = _deferred_package(spec)
    return [importlib.import_module(name) for name in modules]
