"""The MeshAgent is created before the agent's libraries load, and the agent proper takes
it over as its own registration (reef.agent.early)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from reef.__main__ import AGENT_MODULES
from reef.api import names
from tests.agent.bed import AgentBed, AgentProcess, Record
from tests.support.mesh import MeshApi, addresses
from tests.testbed.netns import Node


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
early.early_interface.ADDRESS_WAIT_SECONDS = 60.0  # the interface too, every time
registered = early.register_early(modules=AGENT_MODULES)
if registered is not None and registered.wireguard_go is not None:
    registered.wireguard_go.terminate()  # started by this process: stopped by it
    registered.wireguard_go.wait()
print(json.dumps({
    "registered": registered is not None,
    "interface": registered is not None and registered.wireguard_go is not None,
    "imports": imports,
    "loaded": [name for name in AGENT_MODULES if name in sys.modules],
}))
"""


def test_the_agent_imports_beside_the_registration_calls_which_import_nothing(
    bed: Callable[..., AgentBed], mesh: MeshApi
) -> None:
    agents = bed(["a"])
    node = agents.node("a")
    agents.proxy.attach(node)
    run = subprocess.run(
        # In the node: the early step brings the node's interface up (with the imports).
        node.argv(sys.executable, "-c", _RECORD_IMPORTS),
        env={**agents.agent_env(node), "REEF_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["registered"], run.stderr
    assert result["interface"], run.stderr
    assert mesh.get_agent(agents.node_name("a"))["spec"]["nodeName"] == agents.node_name("a")
    during = [(thread, name) for thread, name, in_window in result["imports"] if in_window]
    # Imports on both threads at once could wait on each other's module locks: the
    # calls' thread imports nothing, the main thread all the agent needs.
    assert [name for thread, name in during if thread != "MainThread"] == []
    assert {"pyroute2.iproute.linux", "reef.agent.agent"} <= {name for _, name in during}
    assert result["loaded"] == list(AGENT_MODULES)


#: ``reef agent`` with the early step's wait for the address set to {wait} s.
_AGENT_WAITING = (
    "import sys; from reef.agent import early_interface;"
    " early_interface.ADDRESS_WAIT_SECONDS = {wait};"
    " from reef.__main__ import main; sys.exit(main(['agent']))"
)

_EARLY_START = re.compile(r"started wireguard-go pid (\d+) for (\S+) while loading the agent$")


def _early_wireguard_go(records: list[Record]) -> int:
    """The pid of the wireguard-go the early step started (its log record says)."""
    (pid,) = [
        int(match.group(1))
        for record in records
        if (match := _EARLY_START.match(str(record.get("message", ""))))
    ]
    return pid


def _parent_pid(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after it
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _wireguard_gos(node: Node) -> list[int]:
    """The wireguard-go processes in the node's network namespace."""
    return [p for p in node.pids() if Path(f"/proc/{p}/comm").read_text() == "wireguard-go\n"]


def _assert_the_agent_supervises_the_early_wireguard_go(agent: AgentProcess) -> None:
    pid = _early_wireguard_go(agent.records)
    # The agent proper was handed that process: its child, and no second one started.
    assert _parent_pid(pid) == agent.process.pid
    assert not any(
        str(r.get("message", "")).startswith("started wireguard-go pid")
        and not _EARLY_START.match(str(r.get("message", "")))
        for r in agent.records
    )
    assert _wireguard_gos(agent.node) == [pid]


def test_a_first_start_puts_the_mesh_address_on_its_interface_before_the_agent_loads(
    bed: Callable[..., AgentBed], mesh: MeshApi
) -> None:
    agents = bed(["a"])
    # A long wait, so the operator's answer always comes in it (the default is 0.5 s).
    agent = agents.start("a", command=("-c", _AGENT_WAITING.format(wait=60.0)))
    agent.phase("configured", timeout=90)
    records = agent.records
    created = _index(records, lambda r: r.get("phase") == "created")
    interface = _index(records, lambda r: r.get("phase") == "interface")
    starting = _index(records, _message_starts("reef agent starting"))
    assert created < interface < starting

    node = agents.node("a")
    body = mesh.get_agent(agents.node_name("a"))
    (address,) = addresses(body)
    assert records[interface]["message"].startswith(
        f"mesh address {address}/32 on {node.wg_ifname} while loading the agent"
    )
    assert agents.public_key("a") == body["spec"]["publicKey"]
    port = node.run("wg", "show", node.wg_ifname, "listen-port").stdout.strip()
    assert port == "51820"
    _assert_the_agent_supervises_the_early_wireguard_go(agent)

    # Supervised means reaped too: deleting the MeshAgent removes the interface, and the
    # process that ran it is gone, not left a zombie of the agent.
    pid = _early_wireguard_go(records)
    mesh.delete_agent(agents.node_name("a"))
    agent.wait_for(_message_starts("our MeshAgent is"), timeout=60)
    assert not Path(f"/proc/{pid}").exists()


def test_an_address_later_than_the_wait_leaves_the_interface_to_the_agent_proper(
    bed: Callable[..., AgentBed], mesh: MeshApi
) -> None:
    agents = bed(["a"])
    # No wait: the address cannot have come, so the early step starts nothing — no
    # interface before the permanent address — and the agent proper makes it.
    agent = agents.start("a", command=("-c", _AGENT_WAITING.format(wait=0.0)))
    agent.phase("configured", timeout=90)
    records = agent.records
    assert not any(r.get("phase") == "interface" for r in records)
    assert not any(_EARLY_START.match(str(r.get("message", ""))) for r in records)
    node = agents.node("a")
    (address,) = addresses(mesh.get_agent(agents.node_name("a")))
    shown = node.run("ip", "-o", "addr", "show", "dev", node.wg_ifname).stdout
    assert f" {address}/32 " in shown
    (wireguard_go,) = _wireguard_gos(node)  # the agent proper's own, and only one
    assert _parent_pid(wireguard_go) == agent.process.pid
