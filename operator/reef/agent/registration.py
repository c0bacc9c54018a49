"""The agent's own MeshAgent: created with the finalizer, patched where it differs.

The agent owns its MeshAgent's ``spec.publicKey``, ``spec.endpoint`` and
``spec.nodeName`` — what a node may say about itself — and writes nothing else of the
spec: role, extraAllowedIPs, requestedAddresses and persistentKeepalive are admin-owned
(the admission policy refuses them from a node's credentials; docs/security.md). It points
the object's ``ownerReferences`` at its Node: when the Node is deleted, the cluster's
garbage collector deletes the MeshAgent (which releases the address into retention, see
the operator) — no reef component has to watch Nodes.
It creates the object with the release finalizer already in
``metadata.finalizers`` (the operator would otherwise add it with a write of its own
per node); the operator removes it after releasing the address, and the agent never
holds a deletion up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reef.api import names
from reef.kube.writes import CONFLICT, ApiException, compare_and_swap

if TYPE_CHECKING:  # the body alone is built before the client is imported (reef.agent.early)
    from reef.kube.client import Kube

log = logging.getLogger(__name__)

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Registration:
    """What this node says about itself in the API."""

    name: str
    network: str
    node_name: str
    public_key: str
    endpoint: str
    #: The Node's uid, when the Node exists: the MeshAgent's owner (for garbage collection).
    node_uid: str | None = None

    def _spec(self) -> dict[str, str]:
        return {"publicKey": self.public_key, "endpoint": self.endpoint, "nodeName": self.node_name}

    def _owner(self) -> Body:
        # No blockOwnerDeletion: deleting a Node must never wait for reef.
        return {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self.node_uid}

    def body(self) -> Body:
        metadata: Body = {"name": self.name, "finalizers": [names.RELEASE_FINALIZER]}
        if self.node_uid:
            metadata["ownerReferences"] = [self._owner()]
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.MESH_AGENT_KIND,
            "metadata": metadata,
            "spec": {"network": self.network, **self._spec()},
        }

    def _owners_patch(self, metadata: Body) -> list[Body] | None:
        """The ownerReferences to write so our Node (this uid) owns the object; None: as is."""
        if not self.node_uid:
            return None
        owners = list(metadata.get("ownerReferences") or [])
        if any(o.get("kind") == "Node" and o.get("uid") == self.node_uid for o in owners):
            return None
        # A Node of an earlier incarnation (same name, other uid) no longer owns us.
        return [o for o in owners if o.get("kind") != "Node"] + [self._owner()]

    def spec_patch(self, existing: Body) -> Body:
        """The merge patch that makes ``existing`` say what we say (empty: nothing); sent
        with ``existing``'s resourceVersion as the precondition (reconcile_own)."""
        spec = existing.get("spec") or {}
        differs = {k: v for k, v in self._spec().items() if spec.get(k, "") != v}
        patch: Body = {}
        if differs:
            patch["spec"] = differs
        metadata = existing.get("metadata") or {}
        finalizers = list(metadata.get("finalizers") or [])
        if names.RELEASE_FINALIZER not in finalizers:
            patch["metadata"] = {"finalizers": [*finalizers, names.RELEASE_FINALIZER]}
        if (owners := self._owners_patch(metadata)) is not None:
            patch.setdefault("metadata", {})["ownerReferences"] = owners
        return patch


class RegistrationError(RuntimeError):
    """The object exists but cannot be ours (another network); the message says why."""


async def create(kube: Kube, registration: Registration) -> Body | None:
    """Create our MeshAgent; None when it already exists."""
    try:
        created = await kube.create_agent(registration.body())
    except ApiException as error:
        if error.status == CONFLICT:
            return None
        raise
    log.info("registered MeshAgent %s", registration.name)
    return created


async def reconcile_own(kube: Kube, registration: Registration, existing: Body) -> Body | None:
    """Patch ``existing`` where it differs; returns the newest body (None if gone)."""
    network = (existing.get("spec") or {}).get("network", names.DEFAULT_NETWORK)
    if network != registration.network:
        raise RegistrationError(
            f"MeshAgent {registration.name} belongs to network {network!r}, but this agent"
            f" joins {registration.network!r}; network is immutable: delete the MeshAgent"
            " or set REEF_NETWORK to match"
        )

    async def write(patch: Body) -> Body:
        patched = await kube.patch_agent(registration.name, patch)
        log.info("updated MeshAgent %s: %s", registration.name, sorted(patch.get("spec", {})))
        return patched

    def build(current: Body) -> Body | None:
        return registration.spec_patch(current) or None

    _, latest = await compare_and_swap(
        existing, build, write, lambda: kube.read_agent(registration.name)
    )
    return latest
