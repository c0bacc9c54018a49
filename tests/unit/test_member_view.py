"""What the agent's MeshAgent cache keeps of each member (reef.agent.watches.member_view):
everything peer planning and the wake-up test read, nothing of others' health."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from reef.agent import watches
from reef.agent.watches import VOCABULARY_LIMIT, member_view, peer_relevant
from reef.api.records import read_mesh_agent


def _condition(kind: str, status: str = "True") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": "R", "message": "m", "observedGeneration": 1}


def _member(name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "generation": 2,
            "creationTimestamp": "2026-12-02T18:00:00Z",
            "finalizers": ["mesh.reef.dev/release"],
        },
        "spec": {
            "nodeName": name,
            "publicKey": "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
            "endpoint": "192.0.2.7:51820",
            "extraAllowedIPs": ["10.9.0.0/24"],
        },
        "status": {
            "addresses": ["100.64.0.7/32"],
            "allocatedAt": "2026-12-02T18:00:01Z",
            "observedGeneration": 2,
            "conditions": [_condition("Allocated"), _condition("Ready", "False")],
            "dataplane": {"backend": "userspace", "peers": {"total": 4999, "healthy": 12}},
        },
    }


def test_our_own_meshagent_is_kept_whole() -> None:
    body = _member("me")
    assert member_view("me")(copy.deepcopy(body)) == body


def test_of_another_member_only_addresses_and_allocated_are_kept_of_the_status() -> None:
    kept = member_view("me")(_member("other"))
    assert kept["status"] == {
        "addresses": ["100.64.0.7/32"],
        "conditions": [_condition("Allocated")],
    }
    assert kept["metadata"] == _member("other")["metadata"]
    assert kept["spec"] == _member("other")["spec"]


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"conditions": [_condition("Ready")]},
        {"addresses": [], "dataplane": {"backend": "kernel"}},
        {"conditions": [_condition("Allocated", "False")]},
    ],
)
def test_a_view_changes_nothing_that_wakes_the_agent_or_that_planning_reads(
    status: dict[str, Any],
) -> None:
    for body in (_member("other"), {**_member("other"), "status": status}):
        kept = member_view("me")(copy.deepcopy(body))
        assert peer_relevant(kept) == peer_relevant(body)
        parsed, full = read_mesh_agent(kept), read_mesh_agent(body)
        assert parsed.metadata == full.metadata
        assert parsed.spec == full.spec
        assert parsed.status.addresses == full.status.addresses
        assert parsed.condition("Allocated") == full.condition("Allocated")


@pytest.fixture
def fresh_vocabulary(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    vocabulary: dict[str, str] = {}
    monkeypatch.setattr(watches, "_vocabulary", vocabulary)
    return vocabulary


@pytest.mark.usefixtures("fresh_vocabulary")
def test_members_parsed_apart_share_their_field_names_and_vocabulary() -> None:
    # Each watch event is parsed on its own: without sharing, every member would hold
    # its own copy of every field name and common word.
    first, second = (
        member_view("me")(json.loads(json.dumps(_member(name)))) for name in ("a", "b")
    )
    assert first["metadata"]["finalizers"][0] is second["metadata"]["finalizers"][0]
    for part in ("metadata", "spec"):
        for key_a, key_b in zip(first[part], second[part], strict=True):
            assert key_a is key_b
    condition_a, condition_b = first["status"]["conditions"][0], second["status"]["conditions"][0]
    for word in ("type", "status", "reason"):
        assert condition_a[word] is condition_b[word]
    assert first["spec"]["nodeName"] == "a", "values of the member itself are its own"


def test_the_shared_vocabulary_is_bounded(fresh_vocabulary: dict[str, str]) -> None:
    view = member_view("me")
    for index in range(VOCABULARY_LIMIT + 50):
        body = _member(f"n{index}")
        body["status"]["conditions"][0]["reason"] = f"Reason{index}"
        assert view(body)["status"]["conditions"][0]["reason"] == f"Reason{index}"
    assert len(fresh_vocabulary) == VOCABULARY_LIMIT
