"""The default suite boots the test-bed VM once and runs every kernel test there."""

from __future__ import annotations

import os
import re

import pytest

from tests.testbed.vm import run_pytest_in_vm, vm_unavailable_reason

KERNEL_TESTS = ["tests/dataplane", "-m", "kernel", "-v", "-rs"]


@pytest.mark.skipif(os.environ.get("REEF_IN_VM") == "1", reason="already inside the VM")
def test_kernel_backend_tests_pass_inside_the_vm() -> None:
    reason = vm_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    result = run_pytest_in_vm(KERNEL_TESTS)
    report = result.output or result.console[-4000:]
    assert result.passed, f"kernel tests failed in the VM (exit {result.returncode}):\n{report}"
    summary = report.strip().splitlines()[-1]
    # A VM whose kernel lacked WireGuard would "pass" by skipping everything.
    assert "skipped" not in summary, f"kernel tests skipped in the VM:\n{report}"
    match = re.search(r"(\d+) passed", summary)
    assert match is not None, report
    assert int(match.group(1)) >= 4, report
