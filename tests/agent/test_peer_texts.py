"""The planner reads addresses without ipaddress' string parser when it can (a plan of
5000 members spent a third of its time there), so its reading must be ipaddress' own:
the same value for what ipaddress accepts, the same refusal (message included: it ends
up in a skipped member's reason) for everything else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reef.agent.peers import _host_network, _ip_literal, forget_parsed_texts, plan_peers
from reef.api.records import MeshNetworkSpec, read_mesh_agent
from reef.dataplane import Key

TRICKY = [
    "0.0.0.0",
    "255.255.255.255",
    "100.64.0.1",
    "1.2.3.256",
    "01.2.3.4",
    "1.2.3.04",
    "1.2.3.00",
    "1.2.3",
    "1.2.3.4.5",
    "1.2.3.4 ",
    " 1.2.3.4",
    "1.2.3.4\n",
    "1..3.4",
    "",
    "\u0661.2.3.4",  # an Arabic-Indic digit: str.isdigit says yes, ipaddress says no
    "1.2.3.\u00b2",
    "+1.2.3.4",
    "1.2.3.-4",
    "1_0.2.3.4",
    "0x1.2.3.4",
    "1.2.3.4/32",
    "fd00::1",
    "::ffff:1.2.3.4",
    "1.2.3.4%eth0",
]


def _reference_host_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if "/" in text:
        raise ValueError(f"{text!r} is not an address")
    return ipaddress.ip_network(text)


def _reference_ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(host.partition("%")[0])


def _outcome(parse: Callable[[str], object], text: str) -> tuple[str, str, str]:
    try:
        value = parse(text)
    except ValueError as error:
        return ("refused", type(error).__name__, str(error))
    return ("read", type(value).__name__, str(value))


def _same_as_ipaddress(text: str) -> None:
    assert _outcome(_host_network, text) == _outcome(_reference_host_network, text)
    assert _outcome(_ip_literal, text) == _outcome(_reference_ip_literal, text)
    if _outcome(_host_network, text)[0] == "read":
        assert _host_network(text) == _reference_host_network(text)


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_addresses_read_as_ipaddress_reads_them(text: str) -> None:
    _same_as_ipaddress(text)


OCTETS = st.one_of(
    st.integers(0, 300).map(str),
    st.sampled_from(["", "0", "00", "01", "007", "0255", "1000", " 1", "1 ", "-1", "+1"]),
)


@given(st.lists(OCTETS, min_size=3, max_size=5).map(".".join))
def test_near_dotted_quads_read_as_ipaddress_reads_them(text: str) -> None:
    _same_as_ipaddress(text)


@given(st.text(alphabet="0123456789.:/%abf x\u0661", max_size=24))
def test_any_text_reads_as_ipaddress_reads_it(text: str) -> None:
    _same_as_ipaddress(text)


def test_a_refused_address_is_refused_again_when_asked_twice() -> None:
    """Parsed texts are cached; a refusal is not a value, so the second plan says the same."""
    forget_parsed_texts()
    network = MeshNetworkSpec(cidrs=("100.64.0.0/10",))
    keys = [Key(bytes([n + 1]) * 32).public_key() for n in range(2)]
    me, bad = (
        read_mesh_agent(
            {
                "metadata": {"name": name},
                "spec": {"publicKey": key.base64(), "endpoint": "198.18.0.1:51820"},
                "status": {"addresses": [address]},
            }
        )
        for name, key, address in zip(
            ("me", "bad"), keys, ("100.64.0.1", "100.64.0.02"), strict=True
        )
    )
    plans = [plan_peers(me, keys[0], [me, bad], network) for _ in range(2)]
    assert plans[0] == plans[1]
    assert [s.name for s in plans[0].skipped] == ["bad"]
    assert "status.addresses unusable" in plans[0].skipped[0].reason
