"""Configure the official client and run its blocking calls off the event loop.

The client modules are imported without ``kubernetes/__init__`` (reef.leanimport): that
file loads every config loader (the kubeconfig one brings requests and OAuth), the
dynamic client, websocket streams and leader election, none of which an in-cluster agent
uses. Modules of reef use ``client``, ``watch`` and ``ApiException`` from here.
"""

import asyncio
import functools
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from reef.api import names
from reef.kube.http import DEFAULT_TIMEOUT_SECONDS, HttpTransport
from reef.kube.kubeconfig import configure_static
from reef.kube.writes import CONFLICT, NOT_FOUND, ApiException, is_status, read_or_none
from reef.leanimport import import_skipping_package_init
from reef.settings import KubeSettings

if TYPE_CHECKING:
    from kubernetes import client
else:
    (client,) = import_skipping_package_init(["kubernetes"], ["kubernetes.client"])

T = TypeVar("T")

__all__ = [
    "CONFLICT",
    "LEDGER_THREADS",
    "LIST_PAGE_SIZE",
    "METADATA_ONLY",
    "METADATA_ONLY_LIST",
    "NOT_FOUND",
    "ApiException",
    "Kube",
    "client",
    "custom_path",
    "is_status",
    "load_api_client",
]

#: Threads for ledger ConfigMap calls, apart from the general pool (see below).
LEDGER_THREADS = 4
#: Objects per page of a LIST (client-go's reflector pages by 500 too).
LIST_PAGE_SIZE = 500
#: Watches that hold a connection of the pool for their whole life (reef.kube.listwatch).
WATCH_CONNECTIONS = 1

APPLY_PATCH = "application/apply-patch+yaml"
JSON = "application/json"
#: Watch events whose objects are their metadata only: a ConfigMap of the ledger is up
#: to 512 KiB, and whoever only needs to know that it changed need not receive it.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
#: The same for a LIST (the API server refuses the other with 406 Not Acceptable).
METADATA_ONLY_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

#: Query options of the raw calls, as the generated APIs name them, to the API's names.
_QUERY_NAMES = {
    "_continue": "continue",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "field_manager": "fieldManager",
    "field_selector": "fieldSelector",
    "force": "force",
    "label_selector": "labelSelector",
    "limit": "limit",
    "resource_version": "resourceVersion",
    "timeout_seconds": "timeoutSeconds",
    "watch": "watch",
}


def custom_path(
    plural: str,
    name: str | None = None,
    subresource: str | None = None,
    group: str = names.GROUP,
    version: str = names.VERSION,
) -> str:
    """The API path of a cluster-scoped custom resource collection, object or subresource."""
    path = f"/apis/{group}/{version}/{plural}"
    for part in (name, subresource):
        if part is not None:
            path += f"/{part}"
    return path


def load_api_client(settings: KubeSettings, pool_size: int = 16) -> Any:
    """An ApiClient from the kubeconfig named in settings, or in-cluster credentials."""
    configuration = client.Configuration()
    if settings.kubeconfig is None:
        (incluster_config,) = import_skipping_package_init(
            ["kubernetes", "kubernetes.config"], ["kubernetes.config.incluster_config"]
        )
        incluster_config.load_incluster_config(client_configuration=configuration)
    elif not configure_static(configuration, settings.kubeconfig, settings.kube_context):
        # Plugins (exec, auth-provider) and other forms: the library's loader knows them.
        (kube_config,) = import_skipping_package_init(
            ["kubernetes", "kubernetes.config"], ["kubernetes.config.kube_config"]
        )
        kube_config.load_kube_config(
            config_file=str(settings.kubeconfig),
            context=settings.kube_context,
            client_configuration=configuration,
        )
    # One HTTP connection per worker thread, the ledger's own threads and a long-lived
    # watch (the operator's MeshAgents), so concurrent calls neither queue on the pool
    # nor open and drop TLS connections.
    configuration.connection_pool_maxsize = pool_size + LEDGER_THREADS + WATCH_CONNECTIONS
    return client.ApiClient(configuration)


class Kube:
    """The API calls reef makes, each awaitable; one instance per process."""

    def __init__(
        self, api_client: Any | None, workers: int = 16, transport: HttpTransport | None = None
    ) -> None:
        """``transport``: the standard-library client (reef.kube.http) for :meth:`request`,
        the agent's only kind of call; then ``api_client`` may be None (no generated APIs).
        Without it, requests go through the official ``api_client``."""
        if api_client is None and transport is None:
            raise ValueError("Kube needs an ApiClient or an HttpTransport")
        self.api_client = api_client
        self._http = transport
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")
        self._ledger_executor = ThreadPoolExecutor(
            max_workers=LEDGER_THREADS, thread_name_prefix="ledger"
        )

    @functools.cached_property
    def core(self) -> Any:
        """The generated core API, built on first use (the operator's ConfigMaps, the CLI).

        Its module holds every core operation with its pydantic signature (~0.8 s and
        ~21 MiB to import, docs/benchmarks.md), so the agent never asks for it: its two
        core calls (its Node, Events) go through :meth:`request`.
        """
        return client.CoreV1Api(self._official())

    def _official(self) -> Any:
        if self.api_client is None:
            raise RuntimeError("this Kube has no official client: only request() calls")
        return self.api_client

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        *,
        accept: str = JSON,
    ) -> Any:
        """One blocking API call, JSON in and out (``accept``: e.g. :data:`METADATA_ONLY`).

        Returns the response unread (``.data`` is the JSON body, ``.stream()`` a watch's
        bytes), urllib3's or reef.kube.http's; a status other than 2xx raises ApiException
        like the generated APIs do. ``query`` takes their option names
        (``field_selector``); a watch's ``timeout_seconds`` also bounds the socket's wait.
        """
        if self._http is not None:
            names_values = {
                _QUERY_NAMES[option]: value
                for option, value in (query or {}).items()
                if value is not None
            }
            server_timeout = names_values.get("timeoutSeconds")
            return self._http.request(
                method,
                path,
                names_values,
                None if body is None else json.dumps(body).encode(),
                content_type=content_type,
                accept=accept,
                stream=bool(names_values.get("watch")),
                timeout=DEFAULT_TIMEOUT_SECONDS
                if server_timeout is None
                else float(server_timeout) + DEFAULT_TIMEOUT_SECONDS,
            )
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        query_params = [
            (_QUERY_NAMES[option], value)
            for option, value in (query or {}).items()
            if value is not None
        ]
        official = self._official()
        serialized = official.param_serialize(
            method=method,
            resource_path=path,
            query_params=query_params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        server_timeout = (query or {}).get("timeout_seconds")
        # A watch's socket waits at most its server-side timeout and a margin: a server
        # gone without closing the connection must not hold a watch forever.
        response = official.call_api(
            *serialized,
            _request_timeout=None
            if server_timeout is None
            else float(server_timeout) + DEFAULT_TIMEOUT_SECONDS,
        )
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def request_json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """:meth:`request`, its response read (which frees the connection) and parsed."""
        return json.loads(self.request(method, path, query, body, content_type).data)

    def list_raw(self, path: str, *, accept: str = JSON, **options: Any) -> Any:
        """GET a collection (``watch=True``: its watch) with the options of a generated list.

        Made to be handed to ``watch.Watch().stream``: no return annotation or docstring
        return type, so the stream leaves every object as plain JSON.
        """
        options.pop("_preload_content", None)  # always unread: the caller parses JSON
        return self.request("GET", path, options, accept=accept)

    def list_node_raw(self, **options: Any) -> Any:
        """GET /api/v1/nodes (``watch=True``: the watch) with the options of ``list_node``.

        Made to be handed to ``watch.Watch().stream``: no return annotation or docstring
        return type, so the stream leaves every object as plain JSON.
        """
        options.pop("_preload_content", None)  # always unread: the caller parses JSON
        return self.request("GET", "/api/v1/nodes", options)

    async def call(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs)
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._ledger_executor.shutdown(wait=False, cancel_futures=True)
        if self.api_client is not None:
            self.api_client.close()
        if self._http is not None:
            self._http.close()

    # MeshAgents and MeshNetworks (cluster-scoped custom objects), as plain JSON

    async def _custom(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            self.request_json, method, path, body, query=query, content_type=content_type
        )
        return result

    async def get_agent(self, name: str) -> dict[str, Any]:
        return await self._custom("GET", custom_path(names.MESH_AGENT_PLURAL, name))

    async def read_agent(self, name: str) -> dict[str, Any] | None:
        """The MeshAgent as the API server has it now; None once it is gone."""
        return await read_or_none(self.get_agent(name))

    async def create_agent(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._custom("POST", custom_path(names.MESH_AGENT_PLURAL), body=body)

    async def list_agents(self, network: str | None = None) -> list[dict[str, Any]]:
        """All MeshAgents, or those of one network (a server-side field selector)."""
        return await self.list_agents_as(_unchanged, network)

    async def list_agents_as(
        self, reduce: Callable[[dict[str, Any]], T | None], network: str | None = None
    ) -> list[T]:
        """``reduce`` of every MeshAgent (of one network), None results left out.

        Read in pages of LIST_PAGE_SIZE from one snapshot, each page reduced before the
        next is read: 5000 MeshAgents at once are ~30 MB of JSON and ~90 MB parsed, which
        the process would keep as resident memory long after the list was done.
        """
        query: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
        if network is not None:
            query["field_selector"] = f"spec.network={network}"
        reduced: list[T] = []
        while True:
            page = await self._custom("GET", custom_path(names.MESH_AGENT_PLURAL), query)
            for item in page.get("items") or ():
                item.get("metadata", {}).pop("managedFields", None)  # never read
                if (kept := reduce(item)) is not None:
                    reduced.append(kept)
            query["_continue"] = (page.get("metadata") or {}).get("continue")
            if not query["_continue"]:
                return reduced

    async def list_networks(self) -> list[dict[str, Any]]:
        listed = await self._custom("GET", custom_path(names.MESH_NETWORK_PLURAL))
        return list(listed.get("items") or [])

    async def read_network(self, name: str) -> dict[str, Any] | None:
        """The MeshNetwork as the API server has it now; None once it is gone."""
        return await read_or_none(self._custom("GET", custom_path(names.MESH_NETWORK_PLURAL, name)))

    async def patch_agent(self, name: str, body: Any) -> dict[str, Any]:
        """Merge-patch (or JSON-patch, for a list body) a MeshAgent's metadata/spec."""
        content_type = (
            "application/json-patch+json"
            if isinstance(body, list)
            else "application/merge-patch+json"
        )
        path = custom_path(names.MESH_AGENT_PLURAL, name)
        return await self._custom("PATCH", path, body=body, content_type=content_type)

    async def patch_status(
        self, plural: str, name: str, body: Any, *, manager: str | None = None
    ) -> dict[str, Any]:
        """Merge-patch a status. A ``metadata.resourceVersion`` in the body is a precondition;
        ``manager`` names the writer in the object's managedFields."""
        path = custom_path(plural, name, "status")
        query = None if manager is None else {"field_manager": manager}
        return await self._custom(
            "PATCH", path, query, body=body, content_type="application/merge-patch+json"
        )

    async def apply_status(
        self,
        plural: str,
        name: str,
        status: dict[str, Any],
        *,
        manager: str,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Server-side apply of the status fields ``manager`` owns (see reef.kube.writes).

        ``status`` holds *all* of them: a field this manager applied before and leaves
        out now is removed. ``force``: each manager is the one authority on its fields,
        so it takes them over from whoever wrote them by other means (e.g. an older
        reef's merge patches). ``resource_version``, when given, is a precondition.
        """
        kind = (
            names.MESH_AGENT_KIND if plural == names.MESH_AGENT_PLURAL else names.MESH_NETWORK_KIND
        )
        metadata: dict[str, Any] = {"name": name}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        body = {
            "apiVersion": names.API_VERSION,
            "kind": kind,
            "metadata": metadata,
            "status": status,
        }
        return await self._custom(
            "PATCH",
            custom_path(plural, name, "status"),
            {"field_manager": manager, "force": True},
            body,
            APPLY_PATCH,
        )

    # ConfigMaps (the ledger). They are on the allocation critical path: every batch
    # waits for its shard write. So they run on their own threads, never queued behind
    # status writes, and skip the client's model deserialisation (slow for objects with a
    # thousand entries): plain JSON dicts in and out.

    async def _ledger_call(self, function: Callable[..., Any], /, *args: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        response: Any = await loop.run_in_executor(
            self._ledger_executor,
            functools.partial(function, *args, _preload_content=False),
        )
        result: dict[str, Any] = json.loads(response.data)
        return result

    async def list_config_maps(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        response: Any = await loop.run_in_executor(
            self._ledger_executor,
            functools.partial(
                self.core.list_namespaced_config_map,
                namespace,
                label_selector=label_selector,
                _preload_content=False,
            ),
        )
        return list(json.loads(response.data).get("items") or [])

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._ledger_call(self.core.read_namespaced_config_map, name, namespace)

    async def create_config_map(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._ledger_call(self.core.create_namespaced_config_map, namespace, body)

    async def list_plain(self, function: Callable[..., Any], *args: Any) -> list[dict[str, Any]]:
        """A LIST as plain JSON, served from the API server's watch cache (rv=0): the
        cheap read for rare checks over many objects (e.g. all Nodes)."""
        response: Any = await self.call(
            function, *args, resource_version="0", _preload_content=False
        )
        return list(json.loads(response.data).get("items") or [])

    async def list_nodes(self) -> list[dict[str, Any]]:
        return await self.list_plain(self.list_node_raw)

    async def list_service_cidrs(self) -> list[dict[str, Any]]:
        return await self.list_plain(self.list_raw, "/apis/networking.k8s.io/v1/servicecidrs")

    async def delete_config_map(self, namespace: str, name: str) -> None:
        await self._ledger_call(self.core.delete_namespaced_config_map, name, namespace)

    async def patch_network(self, name: str, body: Any) -> dict[str, Any]:
        """Merge-patch a MeshNetwork's metadata (the operator's finalizer)."""
        return await self._custom(
            "PATCH",
            custom_path(names.MESH_NETWORK_PLURAL, name),
            body=body,
            content_type="application/merge-patch+json",
        )

    async def replace_config_map(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT with ``metadata.resourceVersion`` set: the API server's compare-and-swap."""
        return await self._ledger_call(
            self.core.replace_namespaced_config_map, name, namespace, body
        )


def _unchanged(body: dict[str, Any]) -> dict[str, Any]:
    return body
