"""Settings of each reef process, read from the environment (``REEF_*``).

Every field documents itself (docs/settings.md is generated from these definitions); the
Helm chart sets them through env variables. They are frozen dataclasses on the standard
library, not pydantic models: the agent runs on every node and must not pay pydantic's
import (≈ 50 ms and ≈ 8 MiB, docs/benchmarks.md) for a dozen scalars. Variables are
strings, converted as pydantic's lax mode did (``"8080"`` is an int, ``"true"`` a bool,
``"8080.5"`` no int); every invalid or missing variable is reported at once, by field and
variable name.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar

LogFormat = Literal["json", "text"]
_Parsed = TypeVar("_Parsed")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a setting without one: the variable must be set.
REQUIRED: Any = _Required()

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def setting(
    default: Any,
    *,
    description: str,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
) -> Any:
    """A documented settings field (``REQUIRED`` as ``default``: no default)."""
    metadata = {
        "description": description,
        "min_length": min_length,
        "max_length": max_length,
        "pattern": pattern,
    }
    return dataclasses.field(default=default, metadata=metadata)


class SettingsError(ValueError):
    """Missing or invalid variables; ``fields`` names them, the message says what is wrong."""

    def __init__(self, problems: Mapping[str, str], variables: Mapping[str, str]) -> None:
        self.fields = tuple(problems)
        super().__init__(
            "\n".join(
                f"  {name} ({variables[name]}): {problem}" for name, problem in problems.items()
            )
        )


@dataclasses.dataclass(frozen=True)
class SettingField:
    """One setting as the reference documents it."""

    name: str
    annotation: object
    default: object  # REQUIRED when there is none
    description: str

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvironmentSettings:
    """Settings whose fields are read from ``<ENV_PREFIX><FIELD NAME>`` variables."""

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
        case-insensitively; ``overrides`` win. Raises :class:`SettingsError`."""
        by_upper_name = {name.upper(): value for name, value in (environment or os.environ).items()}
        values: dict[str, object] = {
            field.name: by_upper_name[cls.variable(field.name)]
            for field in dataclasses.fields(cls)
            if cls.variable(field.name) in by_upper_name
        }
        return cls(**{**values, **overrides})

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}
        annotations = _annotations(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            try:
                converted = _convert(value, annotations[field.name])
                _check_constraints(converted, field.metadata)
            except ValueError as error:
                problems[field.name] = str(error)
                continue
            if converted is not value:
                object.__setattr__(self, field.name, converted)
        if problems:
            raise SettingsError(problems, {name: self.variable(name) for name in problems})


_ANNOTATIONS: dict[type[EnvironmentSettings], dict[str, Any]] = {}


def _annotations(cls: type[EnvironmentSettings]) -> dict[str, Any]:
    # Resolved once per class: the annotations are strings (postponed evaluation).
    if cls not in _ANNOTATIONS:
        _ANNOTATIONS[cls] = typing.get_type_hints(cls)
    return _ANNOTATIONS[cls]


def setting_fields(cls: type[EnvironmentSettings]) -> tuple[SettingField, ...]:
    """The settings of ``cls`` in declaration order (inherited ones first)."""
    hints = _annotations(cls)
    return tuple(
        SettingField(field.name, hints[field.name], field.default, field.metadata["description"])
        for field in dataclasses.fields(cls)
    )


def _convert(value: object, annotation: Any) -> object:
    """``value`` (a variable's text, or an already typed default or override) as
    ``annotation``; ValueError says what is wrong."""
    if value is REQUIRED:
        raise ValueError("required, not set")
    if isinstance(annotation, types.UnionType):
        arms = typing.get_args(annotation)
        if value is None and type(None) in arms:
            return None
        (arm,) = [a for a in arms if a is not type(None)]
        return _convert(value, arm)
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ValueError(f"not one of {'|'.join(map(str, choices))}: {value!r}")
        return value
    if annotation is bool:
        return _boolean(value)
    if annotation is int:
        return _integer(value)
    if annotation is float:
        return _number(value)
    if annotation is Path:
        if isinstance(value, Path):
            return value
        if isinstance(value, str):
            return Path(value)
        raise ValueError(f"not a path: {value!r}")
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"not a string: {value!r}")
        return value
    raise TypeError(f"no conversion to {annotation!r}")  # a settings class's own bug


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"not a boolean (true/false, 1/0, yes/no, on/off): {value!r}")


def _integer(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _parsed(value, int, "an integer")


def _number(value: object) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return _parsed(value, float, "a number")


def _parsed(value: object, parse: Callable[[str], _Parsed], what: str) -> _Parsed:
    """``value``, a variable's text, parsed; any other value is refused as not ``what``."""
    if isinstance(value, str):
        try:
            return parse(value.strip())
        except ValueError:
            pass
    raise ValueError(f"not {what}: {value!r}")


def _check_constraints(value: object, metadata: Mapping[str, Any]) -> None:
    if not isinstance(value, str):
        return
    if (least := metadata.get("min_length")) is not None and len(value) < least:
        raise ValueError(f"at least {least} characters needed, got {len(value)}")
    if (most := metadata.get("max_length")) is not None and len(value) > most:
        raise ValueError(f"at most {most} characters allowed, got {len(value)}: {value!r}")
    if (pattern := metadata.get("pattern")) is not None and not re.search(pattern, value):
        raise ValueError(f"does not match {pattern}: {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KubeSettings(EnvironmentSettings):
    """How to reach the API server: in-cluster by default, or a kubeconfig file."""

    kubeconfig: Path | None = setting(
        None, description="Kubeconfig file; unset means in-cluster service-account credentials."
    )
    kube_context: str | None = setting(None, description="Context in the kubeconfig to use.")
    log_format: LogFormat = setting("json", description="json (one object per line) or text.")
    log_level: str = setting("INFO", description="Python logging level name.")
    bind_address: str = setting(
        "0.0.0.0", description="Address the metrics and health endpoints listen on."
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class OperatorSettings(KubeSettings):
    """The allocation operator (``reef operator``)."""

    namespace: str = setting(
        "reef-system",
        description="Namespace holding the ledger ConfigMaps (the operator's own namespace).",
    )
    metrics_port: int = setting(
        9090, description="Port of the Prometheus /metrics endpoint; 0 = off."
    )
    health_port: int = setting(
        8080, description="Port of the kopf liveness endpoint /healthz; 0 = off."
    )
    repair_interval_seconds: float = setting(
        60.0, description="How often ledger, statuses and live UIDs are compared (the backstop)."
    )
    release_grace_seconds: float = setting(
        30.0,
        description=(
            "An allocated ledger entry whose owner UID is gone is released only after it has"
            " been seen orphaned for this long and re-checked against the API server."
        ),
    )
    api_workers: int = setting(
        16, description="Threads for blocking API calls; bounds concurrent status writes."
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentSettings(KubeSettings):
    """The node agent (``reef agent``)."""

    node_name: str = setting(
        REQUIRED,
        description="This node's name (downward API spec.nodeName); on an external host, the"
        " name of its MeshAgent.",
    )
    external_host: bool = setting(
        False,
        description="This host is not a Kubernetes node (docs/external-hosts.md): its MeshAgent"
        " is named REEF_NODE_NAME but keeps spec.nodeName empty, as admission requires of a"
        " reef-host-<name> identity.",
    )
    network: str = setting("default", description="MeshNetwork this node joins.")
    interface: str = setting(
        "reef0",
        min_length=1,
        # Linux link names: at most IFNAMSIZ - 1 = 15 bytes, no '/', no whitespace.
        max_length=15,
        pattern=r"^[^/\s]+$",
        description="WireGuard interface name (at most 15 chars).",
    )
    key_dir: Path = setting(
        Path("/var/lib/reef"), description="Host directory of <network>.key (mode 0600)."
    )
    endpoint: str | None = setting(
        None, description="host:port peers use to reach this node; default: node IP + listenPort."
    )
    node_ip: str | None = setting(
        None, description="This node's underlay address (downward API status.hostIP)."
    )
    backend: Literal["auto", "kernel", "userspace"] = setting(
        "auto", description="auto picks kernel WireGuard when the module is there."
    )
    resync_seconds: float = setting(300.0, description="Periodic full resync (a backstop only).")
    status_min_interval_seconds: float = setting(
        10.0,
        description=(
            "Least time between two status writes of unchanged importance (peer counts,"
            " messages), for up to 50 peers; larger meshes wait in proportion, at most 300 s."
        ),
    )
    health_check_seconds: float = setting(
        5.0,
        description=(
            "How often handshake ages are read from the device (they change without any API"
            " event); a changed PeersHealthy status is reported at the next check."
        ),
    )
    metrics_port: int = setting(9091, description="Port of the agent's /metrics endpoint; 0 = off.")
