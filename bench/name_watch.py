"""When one named MeshAgent is first seen with an address, by a watch in its own process.

Like bench.allocation's AddressWatch (a watch in the benchmark's process would compete
for the GIL with its other threads and see events late), but for one name: the clock of
a join starts when a watcher of the API first learns the joiner's address.
``time.monotonic`` is CLOCK_MONOTONIC, so the processes' times compare.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import kubernetes.config
from kubernetes import watch

from reef.api import names
from tests.support.mesh import MeshApi, addresses


def _watch(
    kubeconfig: Path, network: str, name: str, results: multiprocessing.Queue[Any], ready: Any
) -> None:
    try:
        mesh = MeshApi(kubernetes.config.new_client_from_config(config_file=str(kubeconfig)))
        selector = f"spec.network={network},metadata.name={name}"
        listed = mesh.custom.list_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, field_selector=selector
        )
        ready.set()
        stream = watch.Watch()
        for event in stream.stream(
            mesh.custom.list_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            names.MESH_AGENT_PLURAL,
            field_selector=selector,
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=600,
        ):
            if addresses(event["object"]):
                results.put(time.monotonic())
                stream.stop()
                return
        results.put("the watch ended without an address")
    except Exception as error:  # reported by wait(): a benchmark must not hang silently
        results.put(repr(error))


class AddressOf:
    """``with AddressOf(kubeconfig, network, name) as seen: create it; seen.wait(60)``."""

    def __init__(self, kubeconfig: Path, network: str, name: str) -> None:
        context = multiprocessing.get_context("fork")
        self._results: multiprocessing.Queue[Any] = context.Queue()
        ready = context.Event()
        self._process = context.Process(
            target=_watch, args=(kubeconfig, network, name, self._results, ready), daemon=True
        )
        self._process.start()
        if not ready.wait(60):
            raise SystemExit("the address watch did not start")

    def __enter__(self) -> AddressOf:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join()

    def wait(self, timeout: float) -> float:
        """The monotonic time the address was seen."""
        try:
            outcome = self._results.get(timeout=timeout)
        except queue.Empty:
            raise SystemExit(f"no address within {timeout:.0f} s") from None
        if isinstance(outcome, str):
            raise SystemExit(f"the address watch failed: {outcome}")
        return float(outcome)
