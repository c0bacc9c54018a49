"""Start-up: the private key, the backend, the wait for the MeshNetwork, registration.

The backend (pyroute2's import, the kernel probe) opens on the device's thread while the
informers list and the MeshAgent is registered (:func:`open_backend_while`): registration
needs only the key, and the operator allocates while the backend is still opening.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from reef.agent import registration
from reef.agent.control import LOGGER_NAME, RETRY_SECONDS, AgentExitError, Wakeup, elapsed
from reef.agent.device import Device
from reef.agent.endpoint import EndpointChoice, choose_endpoint
from reef.agent.keys import KeyFileError, load_or_create_key
from reef.agent.watches import Watches
from reef.api import names
from reef.api.records import MeshNetwork
from reef.dataplane import DataplaneError, Key
from reef.kube.client import Kube
from reef.kube.events import EventRecorder
from reef.observability import metrics
from reef.observability.events import EventType, Reason
from reef.settings import AgentSettings

Body = dict[str, Any]

log = logging.getLogger(LOGGER_NAME)


async def own_ref(kube: Kube, node_name: str) -> Body:
    """Our MeshAgent for an Event, read directly (the informers may not run yet).

    Any failure, not only an API error, falls back to a reference by name: the Event
    is best effort, and the exit it accompanies must not turn into a traceback."""
    try:
        body: Body = await kube.get_agent(node_name)
    except Exception:
        return {"kind": names.MESH_AGENT_KIND, "metadata": {"name": node_name}}
    return body


async def load_key(settings: AgentSettings, kube: Kube, events: EventRecorder) -> Key:
    """The node's private key (created on first start); exit 2 when it cannot be used."""
    try:
        key, created = load_or_create_key(settings.key_dir, settings.network)
    except (KeyFileError, OSError) as error:
        await events.record(
            await own_ref(kube, settings.node_name), EventType.WARNING, Reason.KEY_ERROR, str(error)
        )
        log.error("cannot use the private key: %s", error)
        raise AgentExitError(2, str(error)) from error
    log.info(
        "private key %s (public key %s)",
        "created" if created else "loaded",
        key.public_key().base64(),
    )
    return key


async def open_backend_while(
    device: Device, backend: str, registering_work: Coroutine[Any, Any, None]
) -> None:
    """Open the backend while ``registering_work`` runs; exit 3 without any WireGuard.

    A node without any WireGuard exits at once, not after the MeshNetwork appears:
    whichever of the two ends first is looked at first.
    """
    opening = asyncio.ensure_future(device.open(None if backend == "auto" else backend))
    registering = asyncio.ensure_future(registering_work)
    try:
        await asyncio.wait([opening, registering], return_when=asyncio.FIRST_COMPLETED)
        if not (opening.done() and opening.exception() is not None):
            await registering
    finally:
        registering.cancel()
        await asyncio.wait([opening, registering])
    try:
        choice = opening.result()
    except DataplaneError as error:
        log.error("no WireGuard backend: %s", error)
        raise AgentExitError(3, str(error)) from error
    metrics.AGENT_BACKEND.labels(choice.kind).set(1)
    log.info("backend %s: %s", choice.kind, choice.reason)


async def await_network(watches: Watches, wakeup: Wakeup, network_name: str) -> MeshNetwork:
    logged = False
    while not wakeup.stopping:
        if watches.synced():
            network = watches.network()
            if network is not None:
                return network
            if not logged:
                log.warning("MeshNetwork %s does not exist yet; waiting for it", network_name)
                logged = True
        await wakeup.wait(None)
    raise AgentExitError(0, "stopped")


def endpoint(settings: AgentSettings, node: Body | None, network: MeshNetwork) -> EndpointChoice:
    return choose_endpoint(node, network.spec.listen_port, settings.endpoint, settings.node_ip)


def wanted_registration(
    settings: AgentSettings, key: Key, watches: Watches, network: MeshNetwork
) -> registration.Registration:
    """What this node says about itself, from the settings, the key and our Node."""
    node = watches.node()
    return registration.Registration(
        name=settings.node_name,
        network=settings.network,
        node_name="" if settings.external_host else settings.node_name,
        public_key=key.public_key().base64(),
        endpoint=endpoint(settings, watches.node(), network).endpoint,
        node_uid=(node or {}).get("metadata", {}).get("uid"),
    )


async def register(
    kube: Kube,
    events: EventRecorder,
    *,
    watches: Watches,
    wakeup: Wakeup,
    wanted: registration.Registration,
    started: float,
    early_uid: str | None = None,
) -> None:
    """Create our MeshAgent, or adopt the one there (after a deletion in progress ends).

    ``early_uid``: the MeshAgent reef.agent.early created at start-up; finding it is
    this process's registration, not the adoption of an earlier one.
    """
    waiting_logged = False
    while not wakeup.stopping:
        existing = watches.own_body()
        if existing is None:
            created = await registration.create(kube, wanted)
            if created is not None:
                log.info(
                    "registered; waiting for the operator to allocate an address",
                    extra={"phase": "registered", "elapsed": elapsed(started)},
                )
                return
        elif (existing["metadata"].get("deletionTimestamp")) is None:
            try:
                await registration.reconcile_own(kube, wanted, existing)
            except registration.RegistrationError as error:
                await events.record(existing, EventType.WARNING, Reason.KEY_ERROR, str(error))
                raise AgentExitError(4, str(error)) from error
            own = existing["metadata"].get("uid") == early_uid
            log.info(
                "registered (created at start-up)" if own else "adopted the existing MeshAgent",
                extra={"phase": "registered", "elapsed": elapsed(started)},
            )
            return
        elif not waiting_logged:
            log.info("our MeshAgent is being deleted; registering again once it is gone")
            waiting_logged = True
        # A create that met an object not yet in our cache, or a deletion in
        # progress: the informer wakes us when the object changes.
        await wakeup.wait(None if existing is not None else time.monotonic() + RETRY_SECONDS)
    raise AgentExitError(0, "stopped")
