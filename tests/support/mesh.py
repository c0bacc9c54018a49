"""Test helpers for reef objects on a real API server: create, read, wait by watch.

Waiting is always a watch with a deadline (list, then watch from the list's
resourceVersion), never a sleep.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import kubernetes.client
from kubernetes import watch
from kubernetes.client import ApiClient

from reef.api import names

CRDS = Path(__file__).resolve().parents[2] / "crds"

Body = dict[str, Any]

#: The columns of `kubectl get ma`, as documented (crds/mesh.reef.dev_meshagents.yaml).
MESH_AGENT_COLUMNS = [
    "NAME",
    "NETWORK",
    "NODE",
    "ADDRESS",
    "ENDPOINT",
    "BACKEND",
    "PEERS",
    "READY",
    "AGE",
]


def random_public_key() -> str:
    """Any 32 bytes in base64: enough for the operator, which never uses the key."""
    return base64.b64encode(os.urandom(32)).decode()


class MeshApi:
    """MeshNetworks and MeshAgents through the admin client."""

    def __init__(self, api_client: ApiClient) -> None:
        # Typed as Any: the client declares custom-object results as plain `object`.
        self.custom: Any = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)

    # networks

    def create_network(self, name: str, cidrs: Iterable[str], **spec: Any) -> Body:
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.MESH_NETWORK_KIND,
            "metadata": {"name": name},
            "spec": {"cidrs": list(cidrs), **spec},
        }
        created: Body = self.custom.create_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_NETWORK_PLURAL, body
        )
        return created

    def get_network(self, name: str) -> Body:
        found: Body = self.custom.get_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_NETWORK_PLURAL, name
        )
        return found

    # agents

    def agent_body(self, name: str, network: str, **spec: Any) -> Body:
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.MESH_AGENT_KIND,
            "metadata": {"name": name},
            "spec": {"network": network, "publicKey": random_public_key(), **spec},
        }

    def create_agent(self, name: str, network: str, **spec: Any) -> Body:
        created: Body = self.custom.create_cluster_custom_object(
            names.GROUP,
            names.VERSION,
            names.MESH_AGENT_PLURAL,
            self.agent_body(name, network, **spec),
        )
        return created

    def get_agent(self, name: str) -> Body:
        found: Body = self.custom.get_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name
        )
        return found

    def agents(self, network: str) -> list[Body]:
        listed = self.custom.list_cluster_custom_object(
            names.GROUP,
            names.VERSION,
            names.MESH_AGENT_PLURAL,
            field_selector=f"spec.network={network}",
        )
        return list(listed["items"])

    def delete_agent(self, name: str) -> None:
        self.custom.delete_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name
        )

    def patch_agent(self, name: str, patch: Body) -> Body:
        """A JSON merge patch of the MeshAgent (spec, metadata) as an admin."""
        patched: Body = self.custom.patch_cluster_custom_object(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name, patch
        )
        return patched

    def patch_agent_status(self, name: str, status: Body) -> Body:
        patched: Body = self.custom.patch_cluster_custom_object_status(
            names.GROUP, names.VERSION, names.MESH_AGENT_PLURAL, name, {"status": status}
        )
        return patched

    # ledger

    def ledger(self, namespace: str, network: str) -> list[Any]:
        selector = f"{names.LEDGER_NETWORK_LABEL}={network}"
        return list(self.core.list_namespaced_config_map(namespace, label_selector=selector).items)

    def ledger_owners(self, namespace: str, network: str) -> dict[str, Body]:
        """address -> decoded owner of every readable entry of the network's ledger."""
        import json

        owners: dict[str, Body] = {}
        for config_map in self.ledger(namespace, network):
            for key, value in (config_map.data or {}).items():
                owners[key] = json.loads(value)
        return owners

    # cleanup

    def remove_network(self, network: str) -> None:
        """Delete the network and all its agents, stripping our finalizers (no operator needed)."""
        for agent in self.agents(network):
            name = agent["metadata"]["name"]
            self.custom.patch_cluster_custom_object(
                names.GROUP,
                names.VERSION,
                names.MESH_AGENT_PLURAL,
                name,
                {"metadata": {"finalizers": None}},
            )
            try:
                self.delete_agent(name)
            except kubernetes.client.ApiException as error:
                if error.status != 404:
                    raise
        try:
            self.custom.patch_cluster_custom_object(
                names.GROUP,
                names.VERSION,
                names.MESH_NETWORK_PLURAL,
                network,
                {"metadata": {"finalizers": None}},
            )
            self.custom.delete_cluster_custom_object(
                names.GROUP, names.VERSION, names.MESH_NETWORK_PLURAL, network
            )
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise


def ensure_namespace(core: kubernetes.client.CoreV1Api, name: str) -> str:
    """Create a namespace unless it exists; returns its name."""
    try:
        core.create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
        )
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
    return name


def addresses(body: Body) -> list[str]:
    return list((body.get("status") or {}).get("addresses") or [])


def condition(body: Body, type_: str) -> Body | None:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            found: Body = item
            return found
    return None


def wait_for_objects(
    api: MeshApi,
    plural: str,
    done: Callable[[dict[str, Body]], bool],
    *,
    timeout: float = 60.0,
    field_selector: str | None = None,
    on_event: Callable[[str, Body], None] | None = None,
) -> dict[str, Body]:
    """Watch ``plural`` until ``done(objects by name)`` holds; returns those objects.

    Fails with the last state seen when the deadline passes.
    """
    kwargs: dict[str, Any] = {}
    if field_selector:
        kwargs["field_selector"] = field_selector
    listed = api.custom.list_cluster_custom_object(names.GROUP, names.VERSION, plural, **kwargs)
    objects = {item["metadata"]["name"]: item for item in listed["items"]}
    if done(objects):
        return objects
    deadline = time.monotonic() + timeout
    version = listed["metadata"]["resourceVersion"]
    while (remaining := deadline - time.monotonic()) > 0:
        stream = watch.Watch()
        for event in stream.stream(
            api.custom.list_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            plural,
            resource_version=version,
            timeout_seconds=max(1, int(remaining)),
            allow_watch_bookmarks=True,
            **kwargs,
        ):
            item = event["object"]
            version = item["metadata"]["resourceVersion"]
            if event["type"] == "BOOKMARK":
                continue
            name = item["metadata"]["name"]
            if event["type"] == "DELETED":
                objects.pop(name, None)
            else:
                objects[name] = item
            if on_event is not None:
                on_event(event["type"], item)
            if done(objects):
                stream.stop()
                return objects
            if time.monotonic() > deadline:
                stream.stop()
                break
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting on {plural}; last seen: "
        + ", ".join(f"{n}={addresses(b)}" for n, b in sorted(objects.items())[:20])
    )


def wait_for_agents(
    api: MeshApi,
    network: str,
    done: Callable[[dict[str, Body]], bool],
    timeout: float = 60.0,
    on_event: Callable[[str, Body], None] | None = None,
) -> dict[str, Body]:
    return wait_for_objects(
        api,
        names.MESH_AGENT_PLURAL,
        done,
        timeout=timeout,
        field_selector=f"spec.network={network}",
        on_event=on_event,
    )


def members_ready(
    peers_by_name: dict[str, int], healthy_by_name: dict[str, int] | None = None
) -> Callable[[dict[str, Body]], bool]:
    """Every named member is Ready with exactly that many peers and, where
    ``healthy_by_name`` says so, that many of them healthy (Ready alone does not say all
    are: a member with some peers unreachable stays Ready)."""
    healthy_by_name = healthy_by_name or {}

    def done(objects: dict[str, Body]) -> bool:
        for name, peers in peers_by_name.items():
            body = objects.get(name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return False
            ready = condition(body, "Ready")
            counts = ((body.get("status") or {}).get("dataplane") or {}).get("peers") or {}
            if ready is None or ready["status"] != "True" or counts.get("total") != peers:
                return False
            if name in healthy_by_name and counts.get("healthy") != healthy_by_name[name]:
                return False
        return True

    return done


def all_allocated(count: int) -> Callable[[dict[str, Body]], bool]:
    def done(objects: dict[str, Body]) -> bool:
        return len(objects) >= count and all(addresses(b) for b in objects.values())

    return done


def wait_for_event(
    api: MeshApi, involved: str, reason: str, *, timeout: float = 30.0
) -> kubernetes.client.CoreV1Event:
    """Watch Events in ``default`` (where cluster-scoped objects' Events go) for one."""
    selector = f"involvedObject.name={involved},reason={reason}"
    listed = api.core.list_namespaced_event("default", field_selector=selector)
    if listed.items:
        found: kubernetes.client.CoreV1Event = listed.items[0]
        return found
    stream = watch.Watch()
    for event in stream.stream(
        api.core.list_namespaced_event,
        "default",
        field_selector=selector,
        resource_version=listed.metadata.resource_version if listed.metadata else None,
        timeout_seconds=int(timeout),
    ):
        stream.stop()
        arrived: kubernetes.client.CoreV1Event = event["object"]
        return arrived
    raise AssertionError(f"no Event {reason} for {involved} within {timeout:.0f}s")
