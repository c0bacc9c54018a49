"""X25519 public keys from the OpenSSL that the interpreter's ``ssl`` module has loaded.

Every reef process talks HTTPS, so OpenSSL's libcrypto is mapped already; reaching its
X25519 through ctypes costs about 1 MiB of memory, where importing ``cryptography``
(its own statically linked OpenSSL) costs about 9 MiB (docs/benchmarks.md) — on every
node, for the one derivation at start-up. Not hand-written curve arithmetic: OpenSSL's
constant-time implementation does the work.

The symbols are looked up through the ``_ssl`` extension's handle: ``dlsym`` searches an
object's dependencies too, so this finds the very libcrypto ``ssl`` uses, whatever its
file name. Where that does not work (an interpreter with OpenSSL linked statically or
older than 1.1.1), :func:`derive_public` falls back to ``cryptography``.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

#: OpenSSL's NID for X25519 (obj_mac.h), stable since 1.1.0.
_NID_X25519 = 1034
_KEY_LEN = 32

#: Private key bytes -> public key bytes.
Deriver = Callable[[bytes], bytes]


def _openssl_deriver() -> Deriver:
    """The derivation through libcrypto; OSError or AttributeError where it is absent."""
    import _ssl

    library = ctypes.CDLL(_ssl.__file__)
    new_private = library.EVP_PKEY_new_raw_private_key
    new_private.restype = ctypes.c_void_p
    new_private.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    get_public = library.EVP_PKEY_get_raw_public_key
    get_public.restype = ctypes.c_int
    get_public.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)]
    free = library.EVP_PKEY_free
    free.restype = None
    free.argtypes = [ctypes.c_void_p]

    def derive(private: bytes) -> bytes:
        key = new_private(_NID_X25519, None, private, len(private))
        if not key:
            raise ValueError("OpenSSL refused the X25519 private key")
        try:
            public = ctypes.create_string_buffer(_KEY_LEN)
            length = ctypes.c_size_t(_KEY_LEN)
            if get_public(key, public, ctypes.byref(length)) != 1 or length.value != _KEY_LEN:
                raise ValueError("OpenSSL could not derive the X25519 public key")
            return public.raw
        finally:
            free(key)

    return derive


def cryptography_deriver() -> Deriver:
    """The same derivation through the ``cryptography`` package (the fall-back)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    def derive(private: bytes) -> bytes:
        return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()

    return derive


def openssl_deriver() -> Deriver | None:
    """The libcrypto derivation, or None where this interpreter cannot reach it."""
    try:
        return _openssl_deriver()
    except (OSError, AttributeError, ImportError):
        return None


@functools.cache
def chosen_deriver() -> Deriver:
    """OpenSSL's derivation where reachable, else cryptography's; chosen once."""
    return openssl_deriver() or cryptography_deriver()


def derive_public(private: bytes) -> bytes:
    """The X25519 public key of a 32-byte private key (RFC 7748 clamping applies)."""
    return chosen_deriver()(private)
