"""How veil's processes ask the C allocator to share freed frames between threads."""

from __future__ import annotations

import ctypes
import sys

# mallopt's parameter number for the most heaps ("arenas") threads may spread over (malloc.h).
M_ARENA_MAX = -8
ARENAS = 2


def share_heaps() -> bool:
    """Let all threads allocate from two heaps. Called by veil's own processes (the command,
    its local batch workers), never on import: it is a setting of the whole process. True
    where the C library took it (glibc on Linux).

    glibc gives a thread that finds the heaps busy a heap of its own, up to eight per core.
    A video's frames, a few MB each, are decoded, converted, detected, hidden and encoded in
    four threads, and the runtimes add their own; each heap keeps the frames freed in it for
    its own later use, so the process holds several heaps' worth of free frames. The whole
    command on the 1080p clip of benchmarks/speed.py peaked at 1007-1010 MiB with glibc's
    default and at 926-938 MiB with two heaps, in the same CPU time (three interleaved runs
    each). Keeping blocks over 1 MiB off the heaps instead saved more (895 MiB in-process) but
    the page faults of mapping every frame afresh cost 1.3 s more system time per 150 frames.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_ARENA_MAX, ARENAS))
