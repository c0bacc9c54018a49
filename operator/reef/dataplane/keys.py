"""WireGuard keys as one value type that speaks every encoding.

The same 32 bytes travel as base64 (``wg``, netlink, pyroute2, the MeshAgent
API) and as lowercase hex (the UAPI socket of wireguard-go). Mixing the two up
fails silently as "unknown peer", so every key in reef is a :class:`Key` and the
encoding is chosen only at the edge that needs it.

Key generation follows the X25519 rules WireGuard uses (RFC 7748 clamping). The
public key is derived in this process (reef.dataplane.x25519: OpenSSL's X25519, with
the ``cryptography`` package as the fall-back); the private key never leaves the process.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from dataclasses import dataclass
from typing import Self

KEY_LEN = 32


class InvalidKeyError(ValueError):
    """A string or byte string is not a valid WireGuard key."""


@dataclass(frozen=True, slots=True)
class Key:
    """32 raw bytes of a Curve25519 key (private, public or preshared)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != KEY_LEN:
            raise InvalidKeyError(f"a WireGuard key has {KEY_LEN} bytes, got {len(self.raw)}")

    @classmethod
    def from_base64(cls, text: str | bytes) -> Self:
        """Parse the 44-character base64 form (``wg genkey``, netlink)."""
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidKeyError(f"not base64: {text!r}") from exc
        return cls(raw)

    @classmethod
    def from_hex(cls, text: str) -> Self:
        """Parse the 64-character hex form (UAPI); either case is accepted."""
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise InvalidKeyError(f"not hex: {text!r}") from exc
        return cls(raw)

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse either encoding, told apart by length (64 = hex, 44 = base64)."""
        return cls.from_hex(text) if len(text) == 2 * KEY_LEN else cls.from_base64(text)

    @classmethod
    def generate(cls) -> Self:
        """A fresh private key: random bytes clamped as X25519 requires."""
        raw = bytearray(os.urandom(KEY_LEN))
        raw[0] &= 248
        raw[31] &= 127
        raw[31] |= 64
        return cls(bytes(raw))

    def public_key(self) -> Key:
        """Derive the public key of this private key."""
        return Key(_derive_public(self.raw))

    def base64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    def hex(self) -> str:
        return self.raw.hex()

    def __str__(self) -> str:
        return self.base64()

    def __repr__(self) -> str:
        # Short and harmless to log: a private key must not end up in logs whole.
        return f"Key({self.base64()[:8]}…)"


@functools.lru_cache(maxsize=16)
def _derive_public(private: bytes) -> bytes:
    # Cached: the agent compares its device's public key with its own on every apply and
    # state read. reef.dataplane.x25519 uses the OpenSSL the ssl module loaded.
    from reef.dataplane.x25519 import derive_public

    return derive_public(private)
