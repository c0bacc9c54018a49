"""The enumerations of the reef API, shared by the pydantic models (the operator's) and the
plain records (the agent's), so that both compare equal to the same strings."""

from enum import StrEnum


class Topology(StrEnum):
    FULL_MESH = "FullMesh"
    HUB = "Hub"


class Role(StrEnum):
    AGENT = "Agent"
    HUB = "Hub"
