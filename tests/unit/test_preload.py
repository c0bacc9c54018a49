"""reef.agent.preload: modules imported on a thread while the caller waits, joined after."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reef.agent.preload import imports_while_waiting


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    """An importable folder; every module made in it is forgotten afterwards."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_the_modules_are_imported_on_another_thread_and_loaded_when_the_body_ends(
    package: Path,
) -> None:
    (package / "preload_probe_a.py").write_text(
        "import threading\nimported_on = threading.current_thread().name\n"
    )
    interval = sys.getswitchinterval()
    with imports_while_waiting(["preload_probe_a"]):
        assert sys.getswitchinterval() < interval
    assert sys.getswitchinterval() == interval
    module = sys.modules["preload_probe_a"]
    assert module.imported_on == "preload"
    assert module.imported_on != threading.current_thread().name


def test_a_module_that_fails_to_import_stops_nothing_and_is_not_left_loaded(
    package: Path,
) -> None:
    (package / "preload_probe_broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    (package / "preload_probe_after.py").write_text("")
    with imports_while_waiting(["preload_probe_broken", "preload_probe_after"]):
        pass
    assert "preload_probe_broken" not in sys.modules
    # The rest of the list is left to the caller's own imports, which meet the same error.
    assert "preload_probe_after" not in sys.modules


def test_an_error_in_the_body_still_joins_the_thread_and_restores_the_interval(
    package: Path,
) -> None:
    (package / "preload_probe_b.py").write_text("")
    interval = sys.getswitchinterval()
    with (
        pytest.raises(ValueError, match="the calls failed"),
        imports_while_waiting(["preload_probe_b"]),
    ):
        raise ValueError("the calls failed")
    assert "preload_probe_b" in sys.modules
    assert sys.getswitchinterval() == interval
    assert not [t for t in threading.enumerate() if t.name == "preload"]
