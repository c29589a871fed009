"""Line time (daemon1521.clock): the event loop's clock at a speed, and timeouts on any clock."""

import asyncio

import pytest

from daemon1521.clock import LoopClock
from daemon1521.emulator.clock import EmuClock


def test_a_clock_refuses_a_speed_that_is_not_positive():
    with pytest.raises(ValueError, match="speed"):
        LoopClock(0)


async def test_a_fast_loop_clock_runs_line_time_faster():
    clock = LoopClock(1000.0)
    started = clock.now()
    await clock.sleep(50.0)  # 50 ms of real time
    assert clock.now() - started >= 50.0


async def test_timeout_raises_timeout_error_and_says_it_expired():
    clock = LoopClock(1000.0)
    with pytest.raises(TimeoutError):
        async with clock.timeout(10.0) as deadline:
            await asyncio.Event().wait()
    assert deadline.expired()
    assert await clock.wait_for(asyncio.sleep(0, "done"), 10.0) == "done"


async def test_an_outer_cancellation_is_not_taken_for_a_timeout():
    clock = LoopClock(1000.0)

    async def wait() -> None:
        async with clock.timeout(1000.0):
            await asyncio.Event().wait()

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_emulated_time_runs_flat_out_and_times_out_in_emulated_seconds():
    clock = EmuClock(speed=None)
    runner = asyncio.create_task(clock.run(lambda: None))
    try:
        with pytest.raises(TimeoutError):
            await clock.wait_for(asyncio.Event().wait(), 30.0)
        assert clock.now() >= 30.0
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_a_flat_out_frame_waits_while_a_probe_sees_bytes_on_their_way():
    clock = EmuClock(speed=None)
    answers = iter([True, True, False] * 100)
    asked: list[int] = []

    def probe() -> bool:
        asked.append(clock.frame)
        return next(answers)

    clock.add_probe(probe)
    runner = asyncio.create_task(clock.run(lambda: None))
    try:
        await clock.sleep(0.2)
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    clock.remove_probe(probe)
    # every frame asked until the probe saw nothing more on its way
    frames = sorted(set(asked))
    assert len(frames) >= 5
    assert all(asked.count(frame) == 3 for frame in frames[:-1])
