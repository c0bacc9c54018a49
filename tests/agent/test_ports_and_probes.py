"""A taken port is named with the value to change; the agent's probes tell the truth."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.agent.bed import AgentBed
from tests.support.mesh import MeshApi, condition, wait_for_event
from tests.support.operator_process import OperatorProcess

#: Holds a port in the node until killed; prints "bound" once it has it.
HOLD_PORT = (
    "import socket, signal, sys\n"
    "kind = socket.SOCK_DGRAM if sys.argv[1] == 'udp' else socket.SOCK_STREAM\n"
    "s = socket.socket(socket.AF_INET, kind)\n"
    "s.bind(('0.0.0.0', int(sys.argv[2])))\n"
    "if kind == socket.SOCK_STREAM: s.listen()\n"
    "print('bound', flush=True)\n"
    "signal.pause()\n"
)

#: GET a URL inside the node; prints {"status": ..., "body": ...}.
HTTP_GET = (
    "import json, sys, urllib.error, urllib.request\n"
    "try:\n"
    "    r = urllib.request.urlopen(sys.argv[1], timeout=10)\n"
    "    print(json.dumps({'status': r.status, 'body': r.read().decode()}))\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(json.dumps({'status': e.code, 'body': e.read().decode()}))\n"
)


def hold_port(bed: AgentBed, node: str, protocol: str, port: int) -> None:
    holder = bed.stream(node, "python3", "-c", HOLD_PORT, protocol, str(port))
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "bound"


def get(bed: AgentBed, node: str, path: str, port: int = 9091) -> tuple[int, str]:
    out = bed.node(node).run("python3", "-c", HTTP_GET, f"http://127.0.0.1:{port}{path}").stdout
    answer = json.loads(out)
    return answer["status"], answer["body"]


def test_a_taken_wireguard_port_is_named_with_the_setting_to_change(
    bed: Callable[..., AgentBed], mesh: MeshApi, network: str
) -> None:
    agents = bed(["a"])
    hold_port(agents, "a", "udp", 51820)
    agent = agents.start("a")
    assert agent.process.wait(60) == 5
    record = agent.wait_for(lambda r: "UDP port 51820" in str(r.get("message")))
    assert f"kubectl patch mn {network}" in record["message"]
    assert '"listenPort":51821' in record["message"]

    name = agents.node_name("a")
    configured = condition(mesh.get_agent(name), "Configured")
    assert configured is not None
    assert (configured["status"], configured["reason"]) == ("False", "PortInUse")
    assert "UDP port 51820" in configured["message"]
    event = wait_for_event(mesh, name, "PortInUse")
    assert 'spec":{"listenPort"' in (event.message or "")


def test_a_taken_metrics_port_is_named_with_the_setting_to_change(
    bed: Callable[..., AgentBed], mesh: MeshApi
) -> None:
    agents = bed(["a"])
    hold_port(agents, "a", "tcp", 9091)
    agent = agents.start("a", REEF_METRICS_PORT="9091")
    assert agent.process.wait(60) == 5
    record = agent.wait_for(lambda r: "TCP port 9091" in str(r.get("message")))
    assert "agent.metricsPort" in record["message"]
    assert "REEF_METRICS_PORT" in record["message"]
    event = wait_for_event(mesh, agents.node_name("a"), "PortInUse")
    assert "TCP port 9091" in (event.message or "")


def test_readyz_answers_ok_only_once_the_interface_has_its_permanent_address(
    bed: Callable[..., AgentBed], operator: OperatorProcess
) -> None:
    agents = bed(["a"])
    operator.stop()  # no allocation: the agent registers and waits
    agent = agents.start("a", REEF_METRICS_PORT="9091")
    agent.phase("registered")
    status, body = get(agents, "a", "/readyz")
    assert (status, body.strip()) == (503, "not ok: waiting for the permanent address")

    operator.start()
    agent.phase("configured")
    status, body = get(agents, "a", "/readyz")
    assert status == 200, body
    assert f"{agents.node('a').wg_ifname} configured with 100.64.0." in body


def test_healthz_answers_ok_while_the_agent_loop_runs(bed: Callable[..., AgentBed]) -> None:
    agents = bed(["a"])
    agent = agents.start("a", REEF_METRICS_PORT="9091")
    agent.phase("registered")
    assert get(agents, "a", "/healthz") == (200, "ok: event loop responsive\n")
    status, metrics = get(agents, "a", "/metrics")
    assert status == 200
    assert "reef_agent" in metrics
