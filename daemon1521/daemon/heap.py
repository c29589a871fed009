"""Handing freed heap memory back to the system, where the C library can.

The daemon allocates and frees audio all day on its main thread (prompts
converted for the chip, received audio decoded, records built), most of it
in blocks too small for glibc to map on their own. glibc keeps what is freed
in its heap for reuse and gives back only the top of the heap, so one live
block high up keeps every free page below it resident. In the rack's
30-minute soaks the daemon's RSS kept growing after warm-up (2-4 MiB an
hour), and the growth was in the main thread's heap. ``malloc_trim(0)``
releases free pages anywhere in the heap; on a 20 MiB fragmented heap it
takes under a millisecond, so the daemon calls it every :data:`TRIM_EVERY`
seconds. In a 30-minute soak at 32 lines that lowered the steady RSS by
0.7 MiB and the slope from 3.8 to 2.3 MiB an hour: the rest of the growth
is something else (benchmarks/README.md, Soak). Elsewhere (musl, macOS)
there is no such call and nothing is done.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from loguru import logger

from daemon1521.clock import Clock

TRIM_EVERY = 60.0
"""Seconds between trims: often enough that growth never builds up, rarely
enough that its cost (a walk of the heap) is nothing beside a call's."""


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Gives the C library's free heap pages back to the system."""

    def __init__(self) -> None:
        self._trim = _malloc_trim()
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def trim(self) -> bool:
        """True when memory was given back."""
        if self._trim is None:
            return False
        self.trims += 1
        return bool(self._trim(0))


async def trim_heap_every(
    clock: Clock, seconds: float = TRIM_EVERY, trimmer: HeapTrimmer | None = None
) -> None:
    """Trim the heap every ``seconds`` until cancelled."""
    trimmer = trimmer if trimmer is not None else HeapTrimmer()
    if not trimmer.available:
        logger.debug("no malloc_trim in this C library: freed heap memory stays with the process")
        return
    while True:
        await clock.sleep(seconds)
        trimmer.trim()
