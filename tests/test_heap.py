"""The daemon hands freed heap memory back to the system (``daemon/heap.py``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from daemon1521.clock import LoopClock
from daemon1521.daemon.heap import HeapTrimmer, trim_heap_every

FRAGMENTED = """
import random
from daemon1521.daemon.heap import HeapTrimmer

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

# audio-sized blocks come and go, and a small record stays now and then, as a
# daemon's day goes: the kept ones pin the heap, so its free pages stay resident
random.seed(1521)
kept, passing = [], []
for i in range(100_000):
    passing.append(bytes(random.randint(600, 40_000)))
    if i % 50 == 0:
        kept.append(bytes(100))
    if len(passing) > 300:
        passing.pop(0)
passing.clear()
before = rss_kib()
gave_back = HeapTrimmer().trim()
print(before - rss_kib(), gave_back)
"""


def test_trimming_gives_freed_heap_memory_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED], capture_output=True, text=True, check=True
    ).stdout.split()
    released_kib, gave_back = int(out[0]), out[1]
    assert gave_back == "True"
    assert released_kib > 2048


class CountingTrimmer(HeapTrimmer):
    def __init__(self, available: bool = True) -> None:
        super().__init__()
        self._available = available

    @property
    def available(self) -> bool:
        return self._available

    def trim(self) -> bool:
        self.trims += 1
        return True


async def test_the_heap_is_trimmed_at_each_interval() -> None:
    trimmer = CountingTrimmer()
    task = asyncio.create_task(trim_heap_every(LoopClock(), 0.01, trimmer))
    await asyncio.sleep(0.105)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert 5 <= trimmer.trims <= 11


async def test_without_malloc_trim_nothing_is_done() -> None:
    trimmer = CountingTrimmer(available=False)
    await asyncio.wait_for(trim_heap_every(LoopClock(), 0.01, trimmer), 1.0)
    assert trimmer.trims == 0
