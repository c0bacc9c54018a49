"""The MeshAgent is created before the agent's libraries load, and the agent proper takes
it over as its own registration (reef.agent.early)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from reef.__main__ import AGENT_MODULES
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
    assert records[created]["message"].startswith(f"registered MeshAgent {name} while loading")
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


#: Run in a fresh interpreter: the early registration with the agent's modules beside it,
#: every import recorded by thread and by whether it happened while both ran.
_RECORD_IMPORTS = """
import json, sys, threading
from reef.__main__ import AGENT_MODULES
from reef.agent import early, overlap

imports = []
window = [False]

class Recorder:
    def find_spec(self, name, path=None, target=None):
        imports.append([threading.current_thread().name, name, window[0]])
        return None

sys.meta_path.insert(0, Recorder())
run_while_importing = overlap.run_while_importing

def observed(work, modules):
    window[0] = True
    try:
        return run_while_importing(work, modules)
    finally:
        window[0] = False

early.run_while_importing = observed
registered = early.register_early(modules=AGENT_MODULES)
print(json.dumps({
    "registered": registered is not None,
    "imports": imports,
    "loaded": [name for name in AGENT_MODULES if name in sys.modules],
}))
"""


def test_the_agent_imports_beside_the_registration_calls_which_import_nothing(
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
    # calls' thread imports nothing, the main thread all the agent needs.
    assert [name for thread, name in during if thread != "MainThread"] == []
    assert {"pyroute2.iproute.linux", "reef.agent.agent"} <= {name for _, name in during}
    assert result["loaded"] == list(AGENT_MODULES)
