"""X25519 public-key derivation: OpenSSL through ctypes, held to RFC 7748 and to
``cryptography`` (the fall-back)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from reef.dataplane import x25519
from reef.dataplane.keys import Key


@pytest.fixture(autouse=True)
def _choose_again() -> Iterator[None]:
    """Each test chooses the deriver afresh, and leaves the real choice behind."""
    x25519.chosen_deriver.cache_clear()
    yield
    x25519.chosen_deriver.cache_clear()


#: RFC 7748 section 6.1: Alice's and Bob's key pairs.
RFC7748_PAIRS = [
    (
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    ),
    (
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    ),
]


@pytest.fixture
def openssl() -> x25519.Deriver:
    deriver = x25519.openssl_deriver()
    assert deriver is not None, "this interpreter's ssl module reaches no libcrypto X25519"
    return deriver


@pytest.mark.parametrize(("private", "public"), RFC7748_PAIRS)
def test_openssl_derivation_gives_the_rfc_7748_public_keys(
    openssl: x25519.Deriver, private: str, public: str
) -> None:
    assert openssl(bytes.fromhex(private)).hex() == public


def test_openssl_and_cryptography_agree_on_random_keys_clamped_or_not(
    openssl: x25519.Deriver,
) -> None:
    fallback = x25519.cryptography_deriver()
    for _ in range(200):
        private = os.urandom(32)  # unclamped on purpose: both must clamp the same way
        assert openssl(private) == fallback(private)
        clamped = Key.generate().raw
        assert openssl(clamped) == fallback(clamped)


def test_a_key_of_the_wrong_length_is_refused(openssl: x25519.Deriver) -> None:
    with pytest.raises(ValueError, match="refused"):
        openssl(b"\x01" * 31)


def test_derive_public_uses_openssl_when_it_is_reachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        x25519, "cryptography_deriver", lambda: pytest.fail("fell back to cryptography")
    )
    x25519.chosen_deriver.cache_clear()
    assert x25519.derive_public(bytes.fromhex(RFC7748_PAIRS[0][0])).hex() == RFC7748_PAIRS[0][1]


def test_derive_public_falls_back_to_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(x25519, "openssl_deriver", lambda: None)
    x25519.chosen_deriver.cache_clear()
    assert x25519.derive_public(bytes.fromhex(RFC7748_PAIRS[1][0])).hex() == RFC7748_PAIRS[1][1]
