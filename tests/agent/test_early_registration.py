"""The MeshAgent is created before the agent's libraries load, and the agent proper takes
it over as its own registration (reef.agent.early)."""

from __future__ import annotations

from collections.abc import Callable

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
