"""How many malloc arenas the worker's threads may spread their memory over.

glibc gives each thread that contends for the heap an arena of its own, up to eight per core, and
memory freed in one arena is not reused by another. The worker's threads (the Kafka consumer's,
the metrics server's, the database's) each allocate and free records by the million, so memory
spread over many arenas and stayed there: at 100,000 devices `vigil bench --fleet 100000` measured
2.18 KiB per device with glibc's default and 2.02 KiB with two arenas. An operator's own
`MALLOC_ARENA_MAX` wins; where the C library has no `mallopt` (not glibc) nothing is changed.
"""

from __future__ import annotations

import ctypes
import os

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's arenas; true if it was done. Call before any thread starts: later ones count."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(_M_ARENA_MAX, arenas) == 1
