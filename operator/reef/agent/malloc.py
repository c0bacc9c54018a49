"""Keep the C allocator from holding on to the agent's large transient buffers.

Every health check (and every peer change) reads the whole device from wireguard-go on
the agent's dataplane thread: at 5000 peers a ~1.5 MB answer, which the thread holds a
few times over for a moment (the buffer it is read into, its bytes, its text). glibc
gives a block that large its own mapping and unmaps it when it is freed, but it also
raises its mmap threshold to the size of the freed block (and its trim threshold to
twice that), so every later answer is carved from the thread's malloc arena instead; the
arena keeps the freed pages, ~4.5 MiB at 5000 peers, resident for the agent's lifetime
(measured with malloc_info in the 5000-member bench, docs/benchmarks.md, issue 10).

Setting the threshold explicitly turns glibc's adjustment off: a block of 128 KiB or more
keeps its own mapping and goes back to the system when freed. The value is glibc's own
default; an allocation that large is a buffer or a big table, where one mmap is cheap
next to filling it.

glibc also gives each thread that allocates its own arena (up to 8 per core), and each
arena keeps its own free pages. The agent's threads (informers parsing watch events, the
dataplane thread, the API client's) are mostly idle and hold the GIL when they allocate,
so separate arenas buy no concurrency and only multiply what stays resident:
:func:`limit_arenas` caps them (``MALLOC_ARENA_MAX``, as many Python services set).
"""

from __future__ import annotations

import ctypes

#: mallopt's parameter number for the mmap threshold (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
#: glibc's default threshold, kept fixed from now on.
MMAP_THRESHOLD_BYTES = 128 * 1024
#: mallopt's parameter number for the most arenas (glibc's malloc.h), and the agent's cap.
M_ARENA_MAX = -8
AGENT_ARENAS = 2


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix the C allocator's mmap threshold; whether the C library took it.

    False, and nothing changed, where the C library has no ``mallopt`` or refuses it
    (musl accepts the call and ignores it, which also reads as False).
    """
    return _mallopt(M_MMAP_THRESHOLD, threshold)


def limit_arenas(count: int = AGENT_ARENAS) -> bool:
    """Cap the C allocator's arenas (before the threads start); whether it took it."""
    return _mallopt(M_ARENA_MAX, count)


def _mallopt(parameter: int, value: int) -> bool:
    library = ctypes.CDLL(None)  # the interpreter's own symbols: its C library
    mallopt = getattr(library, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(parameter, value))
