"""reef.agent.overlap: work on a thread while the caller's thread imports."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reef.agent.overlap import run_while_importing


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    """An importable folder; every module made in it is forgotten afterwards."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_the_work_runs_on_another_thread_while_this_one_imports(package: Path) -> None:
    (package / "overlap_probe_a.py").write_text(
        "import threading\nimported_on = threading.current_thread().name\n"
    )
    interval = sys.getswitchinterval()
    seen: dict[str, object] = {}

    def work() -> str:
        seen["thread"] = threading.current_thread().name
        seen["interval"] = sys.getswitchinterval()
        return "created"

    assert run_while_importing(work, ["overlap_probe_a"]) == "created"
    assert seen["thread"] != threading.current_thread().name
    assert isinstance(seen["interval"], float)
    assert seen["interval"] < interval
    assert sys.getswitchinterval() == interval
    assert sys.modules["overlap_probe_a"].imported_on == threading.current_thread().name


def test_the_works_error_is_raised_here_once_the_imports_are_done(package: Path) -> None:
    (package / "overlap_probe_b.py").write_text("")

    def work() -> None:
        raise LookupError("409: it exists")

    with pytest.raises(LookupError, match="409"):
        run_while_importing(work, ["overlap_probe_b"])
    assert "overlap_probe_b" in sys.modules
    assert not [t for t in threading.enumerate() if t.name == "early-registration"]


def test_an_import_error_is_raised_after_the_work_ended(package: Path) -> None:
    (package / "overlap_probe_broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    release = threading.Event()
    finished = threading.Event()

    def work() -> None:
        release.wait(10)
        finished.set()

    interval = sys.getswitchinterval()
    threading.Timer(0.05, release.set).start()
    with pytest.raises(RuntimeError, match="broken on purpose"):
        run_while_importing(work, ["overlap_probe_broken"])
    assert finished.is_set(), "the work's thread was joined first"
    assert sys.getswitchinterval() == interval
