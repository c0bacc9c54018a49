"""Post Kubernetes Events about reef objects, with reasons from the fixed catalogue.

Events of cluster-scoped objects live in the ``default`` namespace, where
``kubectl describe`` and ``kubectl events --for`` look for them.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from reef.api import names
from reef.kube.client import Kube, client
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
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{metadata.get('name', 'reef')}.", namespace=EVENT_NAMESPACE
            ),
            involved_object=client.V1ObjectReference(
                api_version=names.API_VERSION,
                kind=obj.get("kind"),
                name=metadata.get("name"),
                uid=metadata.get("uid"),
                resource_version=metadata.get("resourceVersion"),
            ),
            reason=str(reason),
            message=message[:1024],
            type=str(event_type),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=self._component),
            reporting_component=f"{names.GROUP}/{self._component}",
            reporting_instance=self._component,
        )
        log_method = log.warning if event_type is EventType.WARNING else log.info
        log_method(
            "%s %s: %s",
            reason,
            metadata.get("name"),
            message,
            extra={"reason": str(reason), "object": metadata.get("name")},
        )
        try:
            await self._kube.call(self._kube.core.create_namespaced_event, EVENT_NAMESPACE, event)
        except Exception:
            log.exception("could not post Event %s for %s", reason, metadata.get("name"))
