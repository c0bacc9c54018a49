"""What the agent watches: this network's MeshAgents, the MeshNetwork, our own Node.

Each is an :class:`reef.agent.informer.Informer`; a relevant change wakes the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from reef.agent.health import ALLOCATED
from reef.agent.informer import Informer
from reef.api import names
from reef.api.records import (
    MeshAgent,
    MeshNetwork,
    RecordError,
    read_mesh_agent,
    read_mesh_network,
)
from reef.kube.client import Kube
from reef.settings import AgentSettings

Body = dict[str, Any]


def peer_relevant(body: Body) -> tuple[Any, ...]:
    """What of a MeshAgent can change this node's device or its own report.

    Members write their health (status.dataplane, Configured/PeersHealthy/Ready) often;
    at thousands of members those writes must cost this agent nothing: they update the
    cache but do not wake the loop. Spec, addresses, the Allocated condition, deletion
    and identity do wake it. (The health timer still runs on its own schedule.)
    """
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    allocated = [c for c in status.get("conditions") or [] if c.get("type") == ALLOCATED]
    return (
        metadata.get("uid"),
        metadata.get("generation"),
        metadata.get("deletionTimestamp"),
        tuple(metadata.get("finalizers") or ()),
        json.dumps(body.get("spec"), sort_keys=True),
        tuple(status.get("addresses") or ()),
        json.dumps(allocated, sort_keys=True),
    )


#: One copy of each field name and vocabulary word the member views hold (bounded: past
#: this many entries, new words are kept as they came).
VOCABULARY_LIMIT = 1024
_vocabulary: dict[str, str] = {}


def _shared(text: str) -> str:
    """The one copy of ``text`` kept for every member (the first one seen)."""
    kept = _vocabulary.get(text)
    if kept is not None:
        return kept
    if len(_vocabulary) < VOCABULARY_LIMIT:
        _vocabulary[text] = text
    return text


def _shared_keys(mapping: Body) -> Body:
    return {_shared(key): value for key, value in mapping.items()}


def _shared_condition(condition: Body) -> Body:
    # type, status and reason are words of a small vocabulary; the message is not.
    return {
        _shared(key): _shared(value) if key in ("type", "status", "reason") else value
        for key, value in condition.items()
    }


def member_view(own_name: str) -> Callable[[Body], Body]:
    """What the agent keeps of a MeshAgent: its own whole; of every other member, the
    metadata, the spec, ``status.addresses`` and the Allocated condition — what peer
    planning and :func:`peer_relevant` read. The rest of a member's status (its health
    conditions, ``status.dataplane``) is the larger part of it and this node never reads
    it: at 5000 members, dropping it halves the cache and the parsed members.

    Each watch event is a JSON document of its own, parsed into strings of its own: the
    field names and the words every member shares (apiVersion, kind, finalizers, network,
    role, the condition's type, status and reason) are replaced by one shared copy, which
    at thousands of members is a third of what the views hold.
    """

    def view(body: Body) -> Body:
        status = body.get("status")
        if body.get("metadata", {}).get("name") == own_name:
            return body
        kept: Body = {}
        for key, value in body.items():
            if key in ("apiVersion", "kind") and isinstance(value, str):
                kept[_shared(key)] = _shared(value)
            elif key == "metadata" and isinstance(value, dict):
                metadata = _shared_keys(value)
                finalizers = metadata.get("finalizers")
                if isinstance(finalizers, list):
                    metadata["finalizers"] = [
                        _shared(f) if isinstance(f, str) else f for f in finalizers
                    ]
                kept[_shared(key)] = metadata
            elif key == "spec" and isinstance(value, dict):
                spec = _shared_keys(value)
                for word in ("network", "role"):
                    if isinstance(spec.get(word), str):
                        spec[word] = _shared(spec[word])
                kept[_shared(key)] = spec
            elif key != "status":
                kept[_shared(key)] = value
        if status:
            members_status: Body = {}
            if "addresses" in status:
                members_status[_shared("addresses")] = status["addresses"]
            allocated = [
                _shared_condition(c)
                for c in status.get("conditions") or ()
                if isinstance(c, dict) and c.get("type") == ALLOCATED
            ]
            if allocated:
                members_status[_shared("conditions")] = allocated
            kept[_shared("status")] = members_status
        elif "status" in body:
            kept["status"] = status
        return kept

    return view


def member_record(own_name: str) -> Callable[[Body], Body | MeshAgent]:
    """What the agents' informer caches of a MeshAgent: our own whole (its status is read
    and written), every other member as the record peer planning reads, made from its
    :func:`member_view`. The planner keeps that same record (reef.agent.peer_planner), so
    at 5000 members the cache costs a dict entry per member, not a copy of each.

    A member that does not read as a record is cached as its view and reaches the planner
    as a body, the way every member did before.
    """
    view = member_view(own_name)

    def keep(body: Body) -> Body | MeshAgent:
        if body.get("metadata", {}).get("name") == own_name:
            return body
        kept = view(body)
        try:
            return read_mesh_agent(kept)
        except RecordError:
            return kept

    return keep


class Watches:
    def __init__(self, kube: Kube, settings: AgentSettings) -> None:
        self._kube = kube
        self._settings = settings
        self.agents: Informer | None = None
        self.networks: Informer | None = None
        self.nodes: Informer | None = None
        self._network_body: Body | None = None
        self._network_parsed: MeshNetwork | None = None
        self._own_body: Body | None = None
        self._own_parsed: MeshAgent | None = None

    def start(self, loop: asyncio.AbstractEventLoop, changed: Callable[[], None]) -> None:
        settings = self._settings
        self.networks = Informer(
            self._kube,
            names.MESH_NETWORK_PLURAL,
            f"metadata.name={settings.network}",
            loop,
            changed,
            # the operator's status writes (usage, reachability) change nothing here
            relevant=lambda body: json.dumps(body.get("spec"), sort_keys=True),
        )
        self.agents = Informer(
            self._kube,
            names.MESH_AGENT_PLURAL,
            f"spec.network={settings.network}",
            loop,
            changed,
            relevant=peer_relevant,
            keep=member_record(settings.node_name),
            # our own status is read (reports, conditions); of the others, only what
            # peer_relevant covers
            refresh_quietly=lambda body: body["metadata"]["name"] == settings.node_name,
        )
        # Our own Node (one object, like the kubelet's own watch): its uid makes it the
        # MeshAgent's owner; its annotations and addresses give the endpoint.
        self.nodes = Informer(
            self._kube,
            "nodes",
            f"metadata.name={settings.node_name}",
            loop,
            changed,
            optional=True,
        )
        self.networks.start()
        self.agents.start()
        self.nodes.start()

    def stop(self) -> None:
        for informer in (self.agents, self.networks, self.nodes):
            if informer is not None:
                informer.stop()

    def synced(self) -> bool:
        assert self.networks is not None
        assert self.agents is not None
        assert self.nodes is not None
        return (
            self.networks.synced.is_set()
            and self.agents.synced.is_set()
            and self.nodes.synced.is_set()
        )

    def own_body(self) -> Body | None:
        assert self.agents is not None
        body = self.agents.objects.get(self._settings.node_name)
        return body if isinstance(body, dict) else None

    def network(self) -> MeshNetwork | None:
        assert self.networks is not None
        body = self.networks.objects.get(self._settings.network)
        if not isinstance(body, dict):
            return None
        # Parsed once per version of the object (the informer stores a new dict for each):
        # validating it on every health tick was a quarter of the idle agent's CPU.
        if body is not self._network_body:
            self._network_parsed = read_mesh_network(body)
            self._network_body = body
        return self._network_parsed

    def own(self, body: Body) -> MeshAgent:
        """Our MeshAgent ``body`` (the informer's, or a write's answer) parsed once per
        version, not on every sync: health ticks and others' events re-sync as well."""
        if body is not self._own_body or self._own_parsed is None:
            self._own_parsed = read_mesh_agent(body)
            self._own_body = body
        return self._own_parsed

    def node(self) -> Body | None:
        """Our Node object; None for a host that is no Node (or when Nodes are unreadable)."""
        assert self.nodes is not None
        body = self.nodes.objects.get(self._settings.node_name)
        return body if isinstance(body, dict) else None
