"""Pool arithmetic, shard ids and ConfigMap keys (reef.ipam.pool)."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reef.ipam import (
    SHARD_SIZE,
    Pool,
    RefusalReason,
    decode_key,
    encode_key,
    parse_shard_id,
    shard_id_of,
)

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")


@pytest.mark.parametrize(
    ("cidr", "first", "last", "capacity"),
    [
        ("100.64.0.0/10", "100.64.0.1", "100.127.255.254", 2**22 - 2),
        ("10.0.0.0/29", "10.0.0.1", "10.0.0.6", 6),
        ("10.0.0.0/30", "10.0.0.1", "10.0.0.2", 2),
        ("10.0.0.0/31", "10.0.0.0", "10.0.0.1", 2),
        ("10.0.0.7/32", "10.0.0.7", "10.0.0.7", 1),
        ("fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:ffff", 2**64 - 1),
        ("fd00::/127", "fd00::1", "fd00::1", 1),
        ("fd00::5/128", "fd00::5", "fd00::5", 1),
    ],
)
def test_usable_range_excludes_network_broadcast_and_anycast(
    cidr: str, first: str, last: str, capacity: int
) -> None:
    pool = Pool.from_cidr(cidr)
    assert pool.address(pool.first) == ip_address(first)
    assert pool.address(pool.last) == ip_address(last)
    assert pool.capacity == capacity


def test_refusals_name_the_reason() -> None:
    pool = Pool.from_cidr("10.0.0.0/29")
    assert pool.refusal(IPv4Address("10.0.0.3")) is None
    reasons = {
        "10.0.0.0": RefusalReason.NETWORK_ADDRESS,
        "10.0.0.7": RefusalReason.BROADCAST_ADDRESS,
        "10.0.0.8": RefusalReason.OUTSIDE_POOL,
        "fd00::1": RefusalReason.OUTSIDE_POOL,
    }
    for address, reason in reasons.items():
        refusal = pool.refusal(ip_address(address))
        assert refusal is not None
        assert refusal[0] is reason
        assert address in refusal[1]
    v6 = Pool.from_cidr("fd00::/64")
    anycast = v6.refusal(IPv6Address("fd00::"))
    assert anycast is not None
    assert anycast[0] is RefusalReason.NETWORK_ADDRESS


def test_shard_id_is_a_dns_label_derived_from_the_block() -> None:
    assert shard_id_of(IPv4Address("100.64.5.7")) == "v4-100-64-4-0"
    assert shard_id_of(IPv6Address("fd00::5")) == "v6-fd000000000000000000000000000000"
    assert shard_id_of(IPv6Address("fd00::1:2345")) == "v6-fd000000000000000000000000012000"


@given(st.integers(0, 2**32 - 1))
def test_every_ipv4_address_has_a_parseable_shard_label(value: int) -> None:
    address = IPv4Address(value)
    shard = shard_id_of(address)
    assert DNS_LABEL.fullmatch(shard)
    assert parse_shard_id(shard) == (4, value // SHARD_SIZE)


@given(st.integers(0, 2**128 - 1))
def test_every_ipv6_address_has_a_parseable_shard_label(value: int) -> None:
    shard = shard_id_of(IPv6Address(value))
    assert DNS_LABEL.fullmatch(shard)
    assert parse_shard_id(shard) == (6, value // SHARD_SIZE)


@pytest.mark.parametrize("text", ["", "v4-1-2-3", "v4-1-2-3-4", "v4-300-0-0-0", "v6-xyz", "x"])
def test_parse_shard_id_rejects_what_is_not_a_block_start(text: str) -> None:
    assert parse_shard_id(text) is None


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_configmap_key_round_trips_and_is_a_valid_key(address: IPv4Address | IPv6Address) -> None:
    key = encode_key(address)
    assert CONFIGMAP_KEY.fullmatch(key)
    assert decode_key(key) == address


@pytest.mark.parametrize("key", ["", "x", "100.64.0", "fd00::1", "fd00-1", "010.0.0.1"])
def test_decode_key_refuses_non_canonical_keys(key: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        decode_key(key)
