"""reef.agent.malloc: a large buffer freed on a worker thread is not kept by glibc.

Each case runs in a fresh interpreter: the allocator's thresholds are process-wide and
this test process has moved them already. A thread reads a 1.5 MB answer three times, in
64 KiB pieces, and holds it as buffer, bytes and text for a moment (what the dataplane
thread does at 5000 peers) while something small it allocated meanwhile lives on; then
the bytes free in glibc's arenas are counted (mallinfo2's ``fordblks``): with the
threshold pinned they are back with the system, without it glibc keeps them."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, sys, threading
from reef.agent import malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

if sys.argv[1] == "pinned":
    assert malloc.pin_mmap_threshold()

kept = []

def read_answers():
    chunk = bytes(65536)
    for _ in range(3):
        buffer = bytearray()  # read 64 KiB at a time, as reef.dataplane.wireguard_go does
        while len(buffer) < 1_500_000:
            buffer += chunk
        answer = bytes(buffer)
        kept.append(bytes(1000 + len(kept)))  # something that outlives the answer
        text = answer.decode("ascii")
        del buffer, answer, text

thread = threading.Thread(target=read_answers)
thread.start()
thread.join()
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
print(mallinfo2().fordblks)
"""


def _printed(script: str, mode: str) -> int:
    """The number ``script`` prints, run in a fresh interpreter with ``mode``."""
    result = subprocess.run(
        [sys.executable, "-c", script, mode], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="not glibc (no mallinfo2)")
def test_a_freed_large_buffer_is_not_kept_in_the_arenas() -> None:
    assert _printed(SCRIPT, "default") > 2_000_000  # what the pin is for: glibc keeps them
    assert _printed(SCRIPT, "pinned") < 1_000_000


ARENAS = """
import ctypes, sys, threading
from reef.agent import malloc

if sys.argv[1] == "limited":
    assert malloc.limit_arenas()
barrier = threading.Barrier(8)
kept = []

def allocate():
    barrier.wait()  # all eight allocate at once: glibc would give each its own arena
    kept.append([bytes(200 + i) for i in range(2000)])

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.open_memstream.restype = ctypes.c_void_p
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
libc.malloc_info(0, stream)
libc.fclose(stream)
print(buffer.value.decode().count("<heap nr="))
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_info"), reason="not glibc")
def test_the_agent_threads_share_at_most_two_arenas() -> None:
    assert _printed(ARENAS, "default") > 2  # what the cap is for: a busy thread gets its own
    assert _printed(ARENAS, "limited") <= 2
