"""Pure decisions of issue 9: which endpoint a node announces, which member is broken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reef.agent.endpoint import choose_endpoint
from reef.agent.health import RxTracker, conditions, peer_health
from reef.agent.registration import Registration
from reef.dataplane import DeviceState, Key
from reef.dataplane.spec import PeerState
from reef.operator.reachability import MemberReport, reachability
from tests.support.observations import configured_member

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def node(annotations: dict[str, str] | None = None, *ips: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "uid": "u1", "annotations": annotations or {}},
        "status": {"hostIPs": [{"ip": ip} for ip in ips]},
    }


@pytest.mark.parametrize(
    ("annotations", "expected", "source"),
    [
        ({}, "10.0.0.5:51820", "node-ip"),
        ({"mesh.reef.dev/endpoint": "203.0.113.7"}, "203.0.113.7:51820", "annotation"),
        ({"mesh.reef.dev/endpoint": "203.0.113.7:4500"}, "203.0.113.7:4500", "annotation"),
        ({"mesh.reef.dev/endpoint": "wg.example.org"}, "wg.example.org:51820", "annotation"),
        ({"mesh.reef.dev/endpoint": "2001:db8::7"}, "[2001:db8::7]:51820", "annotation"),
        ({"mesh.reef.dev/endpoint": "[2001:db8::7]:4500"}, "[2001:db8::7]:4500", "annotation"),
        ({"mesh.reef.dev/endpoint-family": "IPv6"}, "[fd00::5]:51820", "family"),
        ({"mesh.reef.dev/endpoint-family": "IPv4"}, "10.0.0.5:51820", "family"),
    ],
)
def test_the_node_annotations_choose_the_endpoint(
    annotations: dict[str, str], expected: str, source: str
) -> None:
    choice = choose_endpoint(node(annotations, "10.0.0.5", "fd00::5"), 51820, None, "10.0.0.5")
    assert (choice.endpoint, choice.source, choice.problem) == (expected, source, None)


@pytest.mark.parametrize(
    "annotations",
    [
        {"mesh.reef.dev/endpoint": "1.2.3.4:99999"},
        {"mesh.reef.dev/endpoint": "a b"},
        {"mesh.reef.dev/endpoint-family": "IPv5"},
        {"mesh.reef.dev/endpoint-family": "IPv6"},  # the node has no IPv6 address
    ],
)
def test_an_unusable_annotation_is_reported_and_the_default_kept(
    annotations: dict[str, str],
) -> None:
    choice = choose_endpoint(node(annotations, "10.0.0.5"), 51820, None, None)
    assert choice.endpoint == "10.0.0.5:51820"
    assert choice.problem is not None
    assert "mesh.reef.dev/endpoint" in choice.problem


def test_without_a_node_the_setting_then_the_node_ip_then_nothing() -> None:
    assert choose_endpoint(None, 51820, "x.example:1", "10.0.0.5").endpoint == "x.example:1"
    assert choose_endpoint(None, 51820, None, "10.0.0.5").endpoint == "10.0.0.5:51820"
    assert choose_endpoint(None, 51820, None, None).endpoint == ""


def test_the_node_becomes_the_owner_and_a_new_incarnation_replaces_the_old() -> None:
    wanted = Registration("n1", "default", "n1", "k", "e", node_uid="new")
    assert wanted.body()["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "new"}
    ]
    existing = {
        "metadata": {
            "resourceVersion": "7",
            "finalizers": ["mesh.reef.dev/release-address"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "old"}],
        },
        "spec": {"publicKey": "k", "endpoint": "e", "nodeName": "n1"},
    }
    patch = wanted.spec_patch(existing)
    assert patch["metadata"]["ownerReferences"][0]["uid"] == "new"
    assert "ownerReferences" not in Registration("n1", "default", "n1", "k", "e").body()["metadata"]


def _state(rx: int) -> DeviceState:
    key = Key(bytes(32))
    return DeviceState(
        peers={
            key: PeerState(public_key=key, last_handshake=NOW - timedelta(seconds=10), rx_bytes=rx)
        }
    )


def test_a_peer_silent_for_three_keepalives_is_unhealthy_even_with_a_recent_handshake() -> None:
    key = Key(bytes(32))
    names = {key: "b"}
    tracker = RxTracker()
    tracker.silence(_state(100), 0.0)
    assert peer_health(_state(100), names, NOW, tracker.silence(_state(100), 7.0), 1) == (1, ())
    silence = tracker.silence(_state(100), 8.5)
    assert peer_health(_state(100), names, NOW, silence, 1) == (0, ("b",))
    assert peer_health(_state(100), names, NOW, silence, 0) == (1, ())  # no keepalive: age only
    assert peer_health(_state(101), names, NOW, tracker.silence(_state(101), 9.0), 1) == (1, ())


def test_one_unreachable_peer_keeps_a_member_ready_and_names_the_peer() -> None:
    _, peers, ready = conditions(configured_member(3, 4, ("d",)))
    assert (peers.status, ready.status, ready.reason) == ("False", "True", "SomePeersUnreachable")
    assert "d" in peers.message
    assert "d" in ready.message


def test_a_member_that_reaches_none_of_its_peers_is_not_ready() -> None:
    _, _, ready = conditions(configured_member(0, 4, ("a", "b", "c", "d")))
    assert (ready.status, ready.reason) == ("False", "Isolated")


def test_the_operator_names_the_member_the_others_cannot_reach() -> None:
    reports = [MemberReport(n, True, False, ("e",)) for n in "abcd"]
    reports.append(MemberReport("e", True, True, ("a", "b", "c", "d")))
    result = reachability(reports)
    assert result.status == "False"
    assert result.message.startswith("e unreachable from 4 of 4 members; e reaches none")
    assert result.members == [{"name": "e", "unreachableFrom": 4, "observers": 4}]


def test_all_reachable_is_true_and_an_isolated_members_list_does_not_count() -> None:
    assert reachability([MemberReport(n, True, False, ()) for n in "abc"]).status == "True"
    reports = [MemberReport("a", True, False, ()), MemberReport("b", True, True, ("a",))]
    result = reachability(reports)
    assert result.members == []
    assert "b reaches none of its peers" in result.message
