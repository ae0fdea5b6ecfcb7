"""veil's processes keep their threads' allocations in two heaps (heap.py)."""

import subprocess
import sys

import pytest

from media import ENV

# Eight threads allocate and free frame-sized blocks at once; glibc's malloc_info then lists
# the heaps ("arenas") the process has.
CODE = """
import ctypes, sys, threading
import numpy as np
from veil.heap import share_heaps
took = share_heaps() if sys.argv[1] == "shared" else None
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    for _ in range(50):
        np.ones(3_000_000, np.uint8).sum()
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, out)
libc.fclose(out)
print(took)
"""


def heaps(tmp_path, mode: str) -> tuple[str, int]:
    xml = tmp_path / f"{mode}.xml"
    run = subprocess.run(
        [sys.executable, "-c", CODE, mode, str(xml)], capture_output=True, text=True, env=ENV
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip(), xml.read_text().count("<heap nr=")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a setting of glibc's malloc")
def test_threads_share_two_heaps(tmp_path):
    took, shared = heaps(tmp_path, "shared")
    _, default = heaps(tmp_path, "default")
    assert took == "True"
    assert shared <= 2 < default
