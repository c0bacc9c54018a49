"""Fixtures for dataplane tests: namespace nodes and a driver that runs inside them.

Markers decide where a test can run, and tests that cannot run here skip
with the reason: ``netns`` needs root, iproute2 and wireguard-go; ``kernel``
needs the wireguard generic-netlink family, which exists inside the test-bed
VM (tests/testbed/vm.py, driven by test_kernel_vm.py) but not on this host.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from reef.dataplane.select import kernel_wireguard_available
from tests.testbed.netns import Lab, netns_nodes


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "network-namespace nodes need root"
    for tool in ("ip", "wg", "wireguard-go", "ping"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install iproute2 wireguard-tools wireguard-go)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    netns_reason = _netns_unavailable()
    has_kernel, kernel_detail = kernel_wireguard_available()
    for item in items:
        if item.get_closest_marker("kernel") and not has_kernel:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"needs kernel WireGuard ({kernel_detail}); these tests run inside"
                    " the test-bed VM: test_kernel_vm.py / python tests/testbed/vm.py"
                )
            )
        if item.get_closest_marker("netns") and netns_reason is not None:
            item.add_marker(pytest.mark.skip(reason=netns_reason))


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Three namespace nodes a, b, c on one bridge; removed after the test."""
    with netns_nodes(["a", "b", "c"]) as nodes:
        yield nodes


@pytest.fixture
def lab_of_two() -> Iterator[Lab]:
    """Two namespace nodes a, b: for the VM, where every process start is slow."""
    with netns_nodes(["a", "b"]) as nodes:
        yield nodes
