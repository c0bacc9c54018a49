"""One CIDR of a MeshNetwork as arithmetic: usable range, capacity, shards.

Addresses are handled as integers internally; nothing here enumerates a pool, so
a /10 (4 Mi addresses) and a /64 (2^64) cost the same.

Which addresses are usable:

* IPv4 /0-/30: everything except the network address (offset 0) and the broadcast
  address (the last one).
* IPv4 /31: both addresses (RFC 3021 point-to-point: there is no broadcast).
* IPv4 /32: the single address.
* IPv6 /0-/127: everything except offset 0, the subnet-router anycast address
  (RFC 4291 §2.6.1). There is no broadcast in IPv6.
* IPv6 /128: the single address.

Shards: the ledger is split into blocks of ``SHARD_SIZE`` (1024) addresses aligned
on absolute address values (an IPv4 /22, or the IPv6 equivalent: the same 1024
addresses). A pool smaller than a block lives in one shard; a bigger pool is a
whole number of blocks. The shard id is derived from the block's first address
and is a valid DNS label: ``v4-100-64-4-0`` or ``v6-`` + 32 hex digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from reef.ipam.model import IPAddress, IPNetwork, RefusalReason

SHARD_BITS = 10
SHARD_SIZE = 1 << SHARD_BITS

_V6_SHARD_RE = re.compile(r"v6-([0-9a-f]{32})")
_V4_SHARD_RE = re.compile(r"v4-(\d{1,3})-(\d{1,3})-(\d{1,3})-(\d{1,3})")


@dataclass(frozen=True, slots=True)
class Pool:
    """A CIDR with its usable range [first, last] as absolute integers."""

    network: IPNetwork
    first: int
    last: int

    @classmethod
    def from_cidr(cls, cidr: str | IPNetwork) -> Pool:
        network = ip_network(cidr, strict=True) if isinstance(cidr, str) else cidr
        base = int(network.network_address)
        size = network.num_addresses
        if size == 1:
            return cls(network, base, base)
        if network.version == 4 and size == 2:
            return cls(network, base, base + 1)
        last = base + size - (2 if network.version == 4 else 1)
        return cls(network, base + 1, last)

    @property
    def version(self) -> int:
        return self.network.version

    @property
    def capacity(self) -> int:
        return self.last - self.first + 1

    def contains(self, value: int) -> bool:
        return self.first <= value <= self.last

    def address(self, value: int) -> IPAddress:
        return IPv4Address(value) if self.version == 4 else IPv6Address(value)

    def refusal(self, address: IPAddress) -> tuple[RefusalReason, str] | None:
        """Why ``address`` can never be allocated from this pool, or None if it can be."""
        if address.version != self.version or address not in self.network:
            return RefusalReason.OUTSIDE_POOL, f"{address} is outside the pool {self.network}"
        value = int(address)
        if value < self.first:
            what = "network address" if self.version == 4 else "subnet-router anycast address"
            return RefusalReason.NETWORK_ADDRESS, f"{address} is the {what} of {self.network}"
        if value > self.last:
            return RefusalReason.BROADCAST_ADDRESS, (
                f"{address} is the broadcast address of {self.network}"
            )
        return None


def block_of(value: int) -> int:
    """The shard block index of an absolute address value."""
    return value >> SHARD_BITS


def shard_id(version: int, block: int) -> str:
    start = block << SHARD_BITS
    if version == 4:
        return "v4-" + str(IPv4Address(start)).replace(".", "-")
    return f"v6-{start:032x}"


def shard_id_of(address: IPAddress) -> str:
    """The id of the ledger shard holding ``address``."""
    return shard_id(address.version, block_of(int(address)))


def parse_shard_id(text: str) -> tuple[int, int] | None:
    """(IP version, block index) of a shard id, or None if it is not one."""
    if match := _V6_SHARD_RE.fullmatch(text):
        start = int(match.group(1), 16)
        version = 6
    elif match := _V4_SHARD_RE.fullmatch(text):
        octets = [int(part) for part in match.groups()]
        if any(octet > 255 for octet in octets):
            return None
        start = int(IPv4Address(".".join(map(str, octets))))
        version = 4
    else:
        return None
    if start % SHARD_SIZE:
        return None
    return version, block_of(start)


def encode_key(address: IPAddress) -> str:
    """ConfigMap key for an address: keys must match [-._a-zA-Z0-9]+, so IPv6 ':' -> '-'."""
    return str(address).replace(":", "-")


def decode_key(key: str) -> IPAddress:
    """Inverse of encode_key; raises ValueError on anything else."""
    text = key.replace("-", ":") if "-" in key else key
    address = ip_address(text)
    if encode_key(address) != key:
        raise ValueError(f"{key!r} is not the canonical key of {address}")
    return address
