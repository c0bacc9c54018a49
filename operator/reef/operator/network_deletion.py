"""A MeshNetwork is not deleted while members hold its addresses.

The operator puts :data:`names.NETWORK_FINALIZER` on every MeshNetwork it sees. When
one is deleted, the API server only sets ``deletionTimestamp``; the operator then
counts the network's MeshAgents (one LIST with a field selector, only for a network
being deleted, again whenever one of its members is gone). While any remain, the
MeshNetwork's ``Ready`` condition is False with reason ``DeletionWaitsForMembers``,
saying how many and how to delete them (one Event, ``NetworkInUse``, when the wait
begins). When none remain — each member's own finalizer has released its address by
then — the operator stops the network's allocator, deletes its ledger ConfigMaps and
removes the finalizer, so nothing of the network is left behind.
"""

from __future__ import annotations

import logging

from reef.api import names
from reef.kube.writes import CONFLICT, NOT_FOUND, ApiException, Body, compare_and_swap
from reef.observability.events import EventType, Reason
from reef.operator.context import OperatorContext

log = logging.getLogger(__name__)

_LISTED = 5


def is_deleting(body: Body) -> bool:
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


async def ensure_finalizer(context: OperatorContext, body: Body) -> None:
    """Add our finalizer (one write per MeshNetwork, once); a 409 means a newer event comes."""
    metadata = body["metadata"]
    finalizers = list(metadata.get("finalizers") or [])
    if names.NETWORK_FINALIZER in finalizers or is_deleting(body):
        return
    patch = {
        "metadata": {
            "finalizers": [*finalizers, names.NETWORK_FINALIZER],
            "resourceVersion": metadata["resourceVersion"],
        }
    }
    try:
        await context.kube.patch_network(metadata["name"], patch)
    except ApiException as error:
        if error.status not in (CONFLICT, NOT_FOUND):
            raise


def blocked_message(network: str, members: list[str]) -> str:
    shown = ", ".join(members[:_LISTED]) + (
        f" and {len(members) - _LISTED} more" if len(members) > _LISTED else ""
    )
    return (
        f"deletion waits: {len(members)} MeshAgent(s) still hold addresses of this network"
        f" ({shown}). Delete them to finish: kubectl delete ma $(kubectl get ma"
        f" --field-selector spec.network={network} -o name); nodes' agents re-register"
        " while their DaemonSet runs, so uninstall or retarget the agents first"
    )


async def continue_deletion(context: OperatorContext, name: str) -> None:
    """One step of a deletion: report who blocks it, or finish it."""
    handle = context.networks.get(name)
    members = sorted(a["metadata"]["name"] for a in await context.kube.list_agents(name))
    if members:
        if handle is not None:
            message = blocked_message(name, members)
            first = handle.status.deletion is None
            handle.status.deletion = message
            handle.status.touch()
            if first:
                await context.recorder.record(
                    handle.body, EventType.WARNING, Reason.NETWORK_IN_USE, message
                )
        return
    await context.remove_network(name)
    namespace = context.settings.namespace
    selector = (
        f"{names.LEDGER_NETWORK_LABEL}={name},"
        f"{names.LEDGER_COMPONENT_LABEL}={names.LEDGER_COMPONENT}"
    )
    for config_map in await context.kube.list_config_maps(namespace, selector):
        try:
            await context.kube.delete_config_map(namespace, config_map["metadata"]["name"])
        except ApiException as error:
            if error.status != NOT_FOUND:
                raise
    await _remove_finalizer(context, name)
    log.info("MeshNetwork %s: no members left; ledger deleted, finalizer removed", name)


async def _remove_finalizer(context: OperatorContext, name: str) -> None:
    def build(current: Body) -> Body | None:
        finalizers = list(current["metadata"].get("finalizers") or [])
        if names.NETWORK_FINALIZER not in finalizers:
            return None
        finalizers.remove(names.NETWORK_FINALIZER)
        return {"metadata": {"finalizers": finalizers}}

    async def write(patch: Body) -> Body:
        return await context.kube.patch_network(name, patch)

    async def reread() -> Body | None:
        return await context.kube.read_network(name)

    await compare_and_swap(await reread(), build, write, reread)
