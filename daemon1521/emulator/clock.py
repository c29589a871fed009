"""Emulated time for the exchange and everything attached to it.

The exchange advances the clock one audio frame (20 ms) at a time, so every
emulated device sees the same time however busy the host is. ``speed`` says
how many emulated seconds pass per real second: 1 for benchmarks, a few for
demos; None runs the frames back to back, as fast as the CPU allows (tests,
where the daemon runs on this same clock). When the host falls behind,
emulated time lags real time rather than skipping frames: audio is never
dropped to keep up.

It is a :class:`daemon1521.clock.Clock`: a daemon in the same process runs on
it, so a busy host slows the modems and the driver together.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable

from daemon1521.clock import ClockBase

RATE = 8000
"""Samples per second on every emulated line."""
FRAME = 160
"""Samples per tick: 20 ms at 8 kHz."""
FRAME_SECONDS = FRAME / RATE
FLAT_OUT_MAX_YIELDS = 64
"""Most event-loop rounds one flat-out frame waits for the host to settle."""
HOLD_POLL = 0.0005
HOLD_MAX = 5.0
"""Most real seconds one frame is held for work outside the loop (see add_hold)."""


class EmuClock(ClockBase):
    """Frame-driven emulated time with sleepers and timers."""

    def __init__(self, speed: float | None = 1.0) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed!r}")
        self.speed: float | None = None if speed is None else float(speed)
        self.frame = 0
        self._timers: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._probes: list[Callable[[], bool]] = []
        self._holds: list[Callable[[], object]] = []

    def add_probe(self, probe: Callable[[], bool]) -> None:
        """Ask ``probe`` before a back-to-back frame ends whether bytes are on their way
        (True): a pty's kernel buffers hand data over in a worker of their own, which
        a busy host runs late; the frame waits for them."""
        self._probes.append(probe)

    def remove_probe(self, probe: Callable[[], bool]) -> None:
        with contextlib.suppress(ValueError):
            self._probes.remove(probe)

    def add_hold(self, hold: Callable[[], object]) -> None:
        """Hold a back-to-back frame while ``hold()`` is true (at most HOLD_MAX real
        seconds): work a device waits for in real time, on another thread (a
        daemon's database reads), must not let line time race past it."""
        self._holds.append(hold)

    def remove_hold(self, hold: Callable[[], object]) -> None:
        with contextlib.suppress(ValueError):
            self._holds.remove(hold)

    def now(self) -> float:
        """Emulated seconds since the exchange started."""
        return self.frame * FRAME_SECONDS

    def frames(self, seconds: float) -> int:
        """Whole frames in ``seconds`` of emulated time (at least 0)."""
        return max(0, round(seconds / FRAME_SECONDS))

    def real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of emulated time take at this speed (0 flat out)."""
        return 0.0 if self.speed is None else seconds / self.speed

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` (from the tick) after ``seconds`` of emulated time."""
        due = self.frame + max(1, self.frames(seconds))
        timer = Timer(callback)
        heapq.heappush(self._timers, (due, next(self._seq), timer._fire))
        return timer

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of emulated time."""
        fut = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await fut
        finally:
            timer.cancel()

    def advance(self) -> None:
        """Move one frame on and fire the timers that are due."""
        self.frame += 1
        while self._timers and self._timers[0][0] <= self.frame:
            _, _, fire = heapq.heappop(self._timers)
            fire()

    async def _settle(self) -> None:
        """Let the event loop run until it has nothing ready and no bytes are on their
        way: what the last frame woke has run, what it wrote has been read, and the
        readers have answered.

        A back-to-back frame must not end while the host is still busy with the
        last one, or every round trip over a pty would cost a frame (20 ms of line
        time) per hop and a line's audio would run dry. The ready queue is
        CPython's ``_ready``; without it a fixed number of rounds is given.
        """
        if self._holds and any([hold() for hold in self._holds]):
            held_until = time.monotonic() + HOLD_MAX
            while any([hold() for hold in self._holds]) and time.monotonic() < held_until:
                await asyncio.sleep(HOLD_POLL)
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        for _ in range(FLAT_OUT_MAX_YIELDS if ready is not None else 4):
            await asyncio.sleep(0)  # one round: ready callbacks run, then a select(0)
            if ready is None or ready:
                continue
            if not any([probe() for probe in self._probes]):
                return

    async def run(self, tick: Callable[[], None]) -> None:
        """Call ``tick`` once per frame, paced to ``speed`` against real time,
        or back to back (yielding to the event loop each frame) flat out."""
        if self.speed is None:
            while True:
                tick()
                self.advance()
                await self._settle()
        start = time.monotonic()
        first = self.frame
        while True:
            tick()
            self.advance()
            deadline = start + (self.frame - first) * FRAME_SECONDS / self.speed
            delay = deadline - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif self.speed > 1:
                # behind: catch up frame by frame, each as a flat-out one
                await self._settle()
            else:
                # behind at real time: a host on real time needs no settling,
                # and probing every modem per frame (a 128-line rack) would
                # only deepen the lag it is catching up on
                await asyncio.sleep(0)


class Timer:
    """A cancellable callback scheduled on an :class:`EmuClock`."""

    __slots__ = ("_callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self._callback = None

    @property
    def cancelled(self) -> bool:
        return self._callback is None

    def _fire(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()
