"""The emulator's clock: frame-driven emulated time."""

import asyncio

import pytest

from daemon1521.clock import Flag
from daemon1521.emulator.clock import FRAME_SECONDS, EmuClock


def test_timers_fire_in_order_of_emulated_time():
    clock = EmuClock()
    fired: list[str] = []
    clock.call_later(0.10, lambda: fired.append("b"))
    clock.call_later(0.04, lambda: fired.append("a"))
    cancelled = clock.call_later(0.06, lambda: fired.append("x"))
    cancelled.cancel()
    for _ in range(10):
        clock.advance()
    assert fired == ["a", "b"]
    assert clock.now() == pytest.approx(10 * FRAME_SECONDS)


def test_bad_speed_is_refused():
    with pytest.raises(ValueError, match="speed"):
        EmuClock(speed=0)


async def test_run_paces_and_sleep_wakes_at_emulated_time():
    clock = EmuClock(speed=50)
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1

    runner = asyncio.create_task(clock.run(tick))
    try:
        await clock.sleep(1.0)
        assert clock.now() >= 1.0
        assert ticks == clock.frame
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_a_hold_stops_flat_out_time_until_the_work_is_done():
    """A daemon's database read runs in real time on another thread: while one is
    in flight, a flat-out line clock must not race on (callers would time out)."""
    clock = EmuClock(speed=None)
    reading = True
    clock.add_hold(lambda: reading)
    runner = asyncio.create_task(clock.run(lambda: None))
    try:
        await asyncio.sleep(0.05)  # real time, while the read goes on
        held_at = clock.frame
        assert held_at <= 1
        reading = False
        await clock.sleep(1.0)
        assert clock.frame >= held_at + clock.frames(1.0)
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_flag_wait_runs_out_on_line_time_or_ends_when_set():
    clock = EmuClock(speed=None)  # flat out: line time, not wall time
    runner = asyncio.create_task(clock.run(lambda: None))
    try:
        flag = Flag()
        start = clock.now()
        assert not await flag.wait(clock, 0.5)
        assert clock.now() - start == pytest.approx(0.5, abs=FRAME_SECONDS)
        clock.call_later(0.2, flag.set)
        start = clock.now()
        assert await flag.wait(clock, 30.0)
        assert clock.now() - start == pytest.approx(0.2, abs=FRAME_SECONDS)
        assert await flag.wait(clock, 30.0)  # set stays set
        # a waiter cancelled meanwhile leaves no timer behind to fire later
        other = Flag()
        waiting = asyncio.create_task(other.wait(clock, 0.1))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await clock.sleep(0.3)
        assert not other.is_set()
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
