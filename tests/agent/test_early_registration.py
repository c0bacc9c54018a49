"""The MeshAgent is created before the agent's libraries load, and the agent proper takes
it over as its own registration (reef.agent.early)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from reef.agent import early
from reef.api import names
from tests.agent.bed import AgentBed, Record
from tests.support.mesh import MeshApi, addresses


def _index(records: list[Record], predicate: Callable[[Record], bool]) -> int:
    return next(i for i, record in enumerate(records) if predicate(record))


def _message_starts(text: str) -> Callable[[Record], bool]:
    return lambda record: str(record.get("message", "")).startswith(text)


def test_a_first_start_registers_before_the_agent_loads_and_then_configures(
    bed: Callable[..., AgentBed], mesh: MeshApi
) -> None:
    agents = bed(["a"])
    agent = agents.start("a")
    agent.phase("configured", timeout=90)
    records = agent.records
    name = agents.node_name("a")

    created = _index(records, lambda r: r.get("phase") == "created")
    starting = _index(records, _message_starts("reef agent starting"))
    registered = _index(records, lambda r: r.get("phase") == "registered")
    assert created < starting < registered
    assert records[created]["message"].startswith(f"registered MeshAgent {name} before loading")
    assert records[registered]["message"] == "registered (created at start-up)"
    # The agent proper created nothing itself (registration.create logs each create).
    assert not any(r.get("message") == f"registered MeshAgent {name}" for r in records)

    body = mesh.get_agent(name)
    key_record = records[_index(records, _message_starts("private key"))]["message"]
    assert f"(public key {body['spec']['publicKey']})" in key_record
    assert body["spec"]["nodeName"] == name
    assert body["spec"]["network"] == agents.network
    assert body["spec"]["endpoint"] == f"{agents.node('a').underlay.ip}:51820"
    assert names.RELEASE_FINALIZER in body["metadata"]["finalizers"]
    assert addresses(body), "the agent proper followed it to its address"


def test_a_restart_leaves_the_existing_meshagent_to_the_agent_proper(
    bed: Callable[..., AgentBed], mesh: MeshApi
) -> None:
    agents = bed(["a"])
    first = agents.start("a")
    first.phase("configured", timeout=90)
    uid = mesh.get_agent(agents.node_name("a"))["metadata"]["uid"]
    assert first.stop() == 0

    second = agents.start("a")
    second.phase("configured", timeout=90)
    registered = second.records[_index(second.records, lambda r: r.get("phase") == "registered")]
    assert registered["message"] == "adopted the existing MeshAgent"
    assert not any(r.get("phase") == "created" for r in second.records)
    assert mesh.get_agent(agents.node_name("a"))["metadata"]["uid"] == uid


#: Run in a fresh interpreter: the early registration, with every import recorded by
#: thread and by whether it happened while the preload ran beside the calls.
_RECORD_IMPORTS = """
import contextlib, json, sys, threading
from reef.agent import early

imports = []
window = [False]

class Recorder:
    def find_spec(self, name, path=None, target=None):
        imports.append([threading.current_thread().name, name, window[0]])
        return None

sys.meta_path.insert(0, Recorder())
preloading = early.imports_while_waiting

@contextlib.contextmanager
def observed(modules):
    window[0] = True
    try:
        with preloading(modules):
            yield
    finally:
        window[0] = False

early.imports_while_waiting = observed
registered = early.register_early()
print(json.dumps({
    "registered": registered is not None,
    "imports": imports,
    "loaded": [name for name in early.PRELOAD if name in sys.modules],
}))
"""


def test_the_dataplane_modules_load_beside_the_registration_calls_and_only_there(
    bed: Callable[..., AgentBed], mesh: MeshApi
) -> None:
    agents = bed(["a"])
    node = agents.node("a")
    run = subprocess.run(
        [sys.executable, "-c", _RECORD_IMPORTS],
        env={**agents.agent_env(node), "REEF_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["registered"], run.stderr
    assert mesh.get_agent(agents.node_name("a"))["spec"]["nodeName"] == agents.node_name("a")
    during = [(thread, name) for thread, name, in_window in result["imports"] if in_window]
    # Imports on both threads at once could wait on each other's module locks: the
    # calls themselves import nothing, the preload thread does it all.
    assert [name for thread, name in during if thread != "preload"] == []
    assert "pyroute2.iproute.linux" in [name for _, name in during]
    assert result["loaded"] == list(early.PRELOAD), "the thread was joined before returning"
