"""Line time: the one clock every timing in the daemon and the emulator goes through.

A line's durations (ring gaps, key timeouts, audio pacing, backoff) are in
line seconds. In production a line second is a real second and the clock is
the event loop's (:class:`LoopClock`). When the daemon shares a process with
the emulator, the emulator's frame clock is the line clock for both sides, so
a busy host slows the modems and the driver together. A daemon in another
process than its emulator runs on a :class:`LoopClock` with the emulator's
speed factor. Nothing else scales time.

What talks to the real world (systemd's watchdog, the control socket's idle
timeouts) stays on the event loop's own time.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, TypeVar

T = TypeVar("T")


class Cancellable(Protocol):
    """A scheduled callback (an :class:`asyncio.TimerHandle` or the emulator's timer)."""

    def cancel(self) -> None: ...


class Deadline(Protocol):
    """What ``async with clock.timeout(s) as deadline`` gives: whether it fired."""

    def expired(self) -> bool: ...


class Clock(Protocol):
    """Line time: ``now``, ``sleep``, ``timeout``, ``call_later``, in line seconds.

    ``speed`` is line seconds per real second, for operators' eyes only;
    None when line time is not tied to the wall (an emulator running flat out).
    """

    speed: float | None

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def timeout(self, seconds: float | None) -> ClockTimeout: ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Cancellable: ...

    async def wait_for(self, awaitable: Awaitable[T], seconds: float | None) -> T: ...


class ClockTimeout:
    """``asyncio.timeout`` on any clock: the task is cancelled when the time is up,
    and the cancellation comes out as :class:`TimeoutError`."""

    def __init__(self, clock: Clock, seconds: float | None) -> None:
        self._clock = clock
        self._seconds = seconds
        self._task: asyncio.Task[object] | None = None
        self._timer: Cancellable | None = None
        self._cancelling = 0
        self._expired = False

    def expired(self) -> bool:
        return self._expired

    async def __aenter__(self) -> ClockTimeout:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a clock timeout must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        if self._seconds is not None:
            self._timer = self._clock.call_later(max(0.0, self._seconds), self._expire)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._expired or self._task is None:
            return
        # like asyncio.timeout: only the cancellation this timeout asked for
        # becomes a TimeoutError; anyone else's goes on
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _expire(self) -> None:
        if self._task is not None and not self._task.done():
            self._expired = True
            self._task.cancel()


class ClockBase(abc.ABC):
    """``timeout`` and ``wait_for`` built on a clock's own ``call_later``."""

    speed: float | None

    @abc.abstractmethod
    def now(self) -> float: ...

    @abc.abstractmethod
    async def sleep(self, seconds: float) -> None: ...

    @abc.abstractmethod
    def call_later(self, seconds: float, callback: Callable[[], None]) -> Cancellable: ...

    def timeout(self, seconds: float | None) -> ClockTimeout:
        """``async with clock.timeout(s):`` raises TimeoutError after ``s`` line seconds."""
        return ClockTimeout(self, seconds)  # type: ignore[arg-type]

    async def wait_for(self, awaitable: Awaitable[T], seconds: float | None) -> T:
        """Await ``awaitable`` for at most ``seconds`` line seconds (None: no limit)."""
        async with self.timeout(seconds):
            return await awaitable


class Flag:
    """A one-way flag that one loop waits on for at most a while.

    Waiting on an ``asyncio.Event`` under a timeout ends, when time runs out,
    in a task cancellation: an exception raised through every frame. A
    prompt's pacing loop waits out several of those a second on every line,
    so its waits resolve a future from a timer instead.
    """

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._waiter is not None:
            _resolve(self._waiter)

    async def wait(self, clock: Clock, seconds: float) -> bool:
        """True once set; False when ``seconds`` of ``clock``'s time passed first."""
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        timer = clock.call_later(seconds, lambda: _resolve(waiter))
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return self._set


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class LoopClock(ClockBase):
    """The event loop's time, in line seconds at ``speed`` line seconds per real second.

    ``speed`` is 1 in production; a daemon driving an emulator in another
    process runs at the emulator's speed.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed!r}")
        self.speed: float | None = float(speed)
        self._rate = float(speed)

    def now(self) -> float:
        return asyncio.get_running_loop().time() * self._rate

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._rate)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, seconds) / self._rate, callback)

    def real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of line time take."""
        return seconds / self._rate
