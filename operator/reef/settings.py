"""Settings of each reef process, read from the environment (``REEF_*``).

Every field documents itself; the Helm chart sets these through env variables. The
values are plain strings validated by pydantic's lax mode (``"8080"`` is an int,
``"true"`` a bool). pydantic-settings did this before; reef's settings are all scalars,
and its import (dotenv, the cloud secret providers, package metadata) was ≈ 40 ms of the
agent's ≈ 300 ms start-up imports (docs/benchmarks.md).
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

LogFormat = Literal["json", "text"]


class EnvironmentSettings(BaseModel):
    """A model whose fields are read from ``<ENV_PREFIX><FIELD NAME>`` variables."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: Prepended to each field's name, upper case, to name its variable.
    ENV_PREFIX: ClassVar[str] = "REEF_"

    @classmethod
    def variable(cls, field: str) -> str:
        return f"{cls.ENV_PREFIX}{field}".upper()

    @classmethod
    def from_environment(
        cls, environment: Mapping[str, str] | None = None, **overrides: object
    ) -> Self:
        """The settings from ``environment`` (default: this process's), names matched
        case-insensitively; ``overrides`` win. Raises pydantic's ValidationError, which
        names the field of a missing or invalid variable."""
        by_upper_name = {name.upper(): value for name, value in (environment or os.environ).items()}
        values: dict[str, object] = {
            field: by_upper_name[cls.variable(field)]
            for field in cls.model_fields
            if cls.variable(field) in by_upper_name
        }
        return cls.model_validate({**values, **overrides})


class KubeSettings(EnvironmentSettings):
    """How to reach the API server: in-cluster by default, or a kubeconfig file."""

    kubeconfig: Path | None = Field(
        None, description="Kubeconfig file; unset means in-cluster service-account credentials."
    )
    kube_context: str | None = Field(None, description="Context in the kubeconfig to use.")
    log_format: LogFormat = Field("json", description="json (one object per line) or text.")
    log_level: str = Field("INFO", description="Python logging level name.")
    bind_address: str = Field(
        "0.0.0.0", description="Address the metrics and health endpoints listen on."
    )


class OperatorSettings(KubeSettings):
    """The allocation operator (``reef operator``)."""

    namespace: str = Field(
        "reef-system",
        description="Namespace holding the ledger ConfigMaps (the operator's own namespace).",
    )
    metrics_port: int = Field(
        9090, description="Port of the Prometheus /metrics endpoint; 0 = off."
    )
    health_port: int = Field(
        8080, description="Port of the kopf liveness endpoint /healthz; 0 = off."
    )
    repair_interval_seconds: float = Field(
        60.0, description="How often ledger, statuses and live UIDs are compared (the backstop)."
    )
    release_grace_seconds: float = Field(
        30.0,
        description=(
            "An allocated ledger entry whose owner UID is gone is released only after it has"
            " been seen orphaned for this long and re-checked against the API server."
        ),
    )
    api_workers: int = Field(
        16, description="Threads for blocking API calls; bounds concurrent status writes."
    )


class AgentSettings(KubeSettings):
    """The node agent (``reef agent``)."""

    node_name: str = Field(
        ...,
        description="This node's name (downward API spec.nodeName); on an external host, the"
        " name of its MeshAgent.",
    )
    external_host: bool = Field(
        False,
        description="This host is not a Kubernetes node (docs/external-hosts.md): its MeshAgent"
        " is named REEF_NODE_NAME but keeps spec.nodeName empty, as admission requires of a"
        " reef-host-<name> identity.",
    )
    network: str = Field("default", description="MeshNetwork this node joins.")
    interface: str = Field(
        "reef0",
        min_length=1,
        # Linux link names: at most IFNAMSIZ - 1 = 15 bytes, no '/', no whitespace.
        max_length=15,
        pattern=r"^[^/\s]+$",
        description="WireGuard interface name (at most 15 chars).",
    )
    key_dir: Path = Field(
        Path("/var/lib/reef"), description="Host directory of <network>.key (mode 0600)."
    )
    endpoint: str | None = Field(
        None, description="host:port peers use to reach this node; default: node IP + listenPort."
    )
    node_ip: str | None = Field(
        None, description="This node's underlay address (downward API status.hostIP)."
    )
    backend: Literal["auto", "kernel", "userspace"] = Field(
        "auto", description="auto picks kernel WireGuard when the module is there."
    )
    resync_seconds: float = Field(300.0, description="Periodic full resync (a backstop only).")
    status_min_interval_seconds: float = Field(
        10.0, description="Least time between two status writes of unchanged importance."
    )
    health_check_seconds: float = Field(
        5.0,
        description=(
            "How often handshake ages are read from the device (they change without any API"
            " event); a changed PeersHealthy status is reported at the next check."
        ),
    )
    metrics_port: int = Field(9091, description="Port of the agent's /metrics endpoint; 0 = off.")
