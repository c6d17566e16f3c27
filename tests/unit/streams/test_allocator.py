"""The worker caps glibc's malloc arenas, and an operator's MALLOC_ARENA_MAX still wins.

Each case runs in a fresh interpreter: arenas are made per thread and never given back, so the
count is only meaningful in a process whose threads start after the cap.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

GLIBC = hasattr(ctypes.CDLL(None), "malloc_stats")
pytestmark = pytest.mark.skipif(not GLIBC, reason="malloc arenas are glibc's")

# Six threads alive at once (an exited thread's arena goes to the next one), each allocating outside
# Python's small-object allocator; then glibc's own count.
_PROGRAM = """
import ctypes, sys, threading
from streams.allocator import limit_arenas
print(limit_arenas() if sys.argv[1] == "cap" else None, flush=True)
together = threading.Barrier(6)
def work():
    held = [bytearray(200_000) for _ in range(20)]
    together.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(mode: str, env_extra: dict[str, str] | None = None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | (env_extra or {})
    done = subprocess.run([sys.executable, "-c", _PROGRAM, mode], capture_output=True, text=True,
                          env=env, timeout=60, check=True)
    return done.stdout.strip(), sum(line.startswith("Arena ") for line in done.stderr.splitlines())


def test_without_the_cap_each_thread_takes_an_arena_of_its_own() -> None:
    assert _arenas("plain") == ("None", 7)


def test_the_cap_keeps_every_thread_within_two_arenas() -> None:
    assert _arenas("cap") == ("True", 2)


def test_an_operators_malloc_arena_max_is_left_to_glibc() -> None:
    assert _arenas("cap", {"MALLOC_ARENA_MAX": "3"}) == ("False", 3)
