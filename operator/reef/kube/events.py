"""Post Kubernetes Events about reef objects, with reasons from the fixed catalogue.

Events of cluster-scoped objects live in the ``default`` namespace, where
``kubectl describe`` and ``kubectl events --for`` look for them.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from reef.api import names
from reef.kube.client import Kube
from reef.observability.events import EventType, Reason

log = logging.getLogger(__name__)

EVENT_NAMESPACE = "default"


class EventRecorder:
    def __init__(self, kube: Kube, component: str) -> None:
        self._kube = kube
        self._component = component

    async def record(
        self, obj: dict[str, Any], event_type: EventType, reason: Reason, message: str
    ) -> None:
        """Post one Event; a failure is logged, never raised (Events are best effort)."""
        metadata = obj.get("metadata", {})
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # Plain JSON, posted through the generic client: the agent never loads the core
        # API's module nor its model classes (see Kube.core).
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata.get('name', 'reef')}.",
                "namespace": EVENT_NAMESPACE,
            },
            "involvedObject": {
                "apiVersion": names.API_VERSION,
                "kind": obj.get("kind"),
                "name": metadata.get("name"),
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": str(reason),
            "message": message[:1024],
            "type": str(event_type),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": self._component},
            "reportingComponent": f"{names.GROUP}/{self._component}",
            "reportingInstance": self._component,
        }
        log_method = log.warning if event_type is EventType.WARNING else log.info
        log_method(
            "%s %s: %s",
            reason,
            metadata.get("name"),
            message,
            extra={"reason": str(reason), "object": metadata.get("name")},
        )
        try:
            path = f"/api/v1/namespaces/{EVENT_NAMESPACE}/events"
            await self._kube.call(self._kube.request_json, "POST", path, event)
        except Exception:
            log.exception("could not post Event %s for %s", reason, metadata.get("name"))
