"""The agent's endpoint-name resolver: names are looked up at once, not one by one."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import ip_address
from typing import Any

import pytest

from reef.agent import resolver
from reef.agent.resolver import Resolver

TIMEOUT = 5.0  # a deadline, not a wait: every fake lookup is released by an event


def test_names_are_resolved_concurrently_and_a_failure_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Serial lookups would leave the first name waiting for the second until its DNS
    # timeout; shortened so that a regression fails fast instead of hanging the test.
    monkeypatch.setattr(resolver, "DNS_TIMEOUT_SECONDS", 1.0)

    async def scenario() -> dict[str, Any]:
        second_asked = asyncio.Event()

        async def getaddrinfo(host: str, port: Any, **_: Any) -> list[Any]:
            if host == "a.example":
                await second_asked.wait()  # answers only once b's lookup is running too
                return [(socket.AF_INET, socket.SOCK_DGRAM, 0, "", ("192.0.2.1", 0))]
            second_asked.set()
            if host == "b.example":
                return [(socket.AF_INET6, socket.SOCK_DGRAM, 0, "", ("2001:db8::2", 0, 0, 0))]
            raise OSError("Name or service not known")

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        names = Resolver()
        await names.resolve({"a.example", "b.example", "nowhere.example"})
        return dict(names.resolved)

    resolved = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert resolved == {
        "a.example": ip_address("192.0.2.1"),
        "b.example": ip_address("2001:db8::2"),
        "nowhere.example": None,
    }
