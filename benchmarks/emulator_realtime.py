"""How many lines the emulator and the driver sustain at real time, on one core.

Every line carries the same call, end to end over ptys: a subscriber dials
1521, the driver answers on the first ring, plays a 2 s prompt, collects three
keys and hangs up. First the site runs faster than real time with more and
more lines, giving emulated line-seconds per CPU-second of this process
(emulator, ptys and driver together) and the real-time factor at N lines;
then a rack of lines runs at real time, to show it keeps up and at what load.

Run: ``.venv/bin/python benchmarks/emulator_realtime.py`` (about 15 s).
Not a test: it prints figures, it asserts nothing about speed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

from loguru import logger

from daemon1521.dsp import codecs
from daemon1521.dsp.tones import tone
from daemon1521.emulator.rig import Rig, wait_cancelled
from daemon1521.modem.voice import VoiceModem

PERSONALITIES = ("conexant-cx93001", "usr-5637", "generic-v253", "field-quirks")
LINE_COUNTS = (1, 4, 16, 32)
REAL_TIME_LINES = 64
MAX_SPEED = 20.0
HEADROOM = 0.5
"""Run at this fraction of the speed the previous round suggests the CPU allows."""
PROMPT_SECONDS = 2.0
KEYS = "456"
SETTLE = 0.3
"""Seconds after answering on the first ring: the caller's last dialled digit is
still sounding then, and reaches the modem as a key; it is flushed."""


@dataclass
class Round:
    lines: int
    speed: float
    emulated: float
    wall: float
    cpu: float
    completed: int

    @property
    def line_seconds_per_cpu_second(self) -> float:
        return self.emulated * self.lines / self.cpu

    @property
    def kept_up(self) -> float:
        """Achieved clock speed over the requested one (1.0: no lag)."""
        return self.emulated / self.wall / self.speed


async def _line(rig: Rig, modem: VoiceModem, index: int) -> bool:
    phone = rig.phone(f"0912000{index:04d}")
    dialling = asyncio.create_task(phone.dial(rig.service_number))
    try:
        if await modem.wait_for_call(timeout=30) is None:
            return False
        await modem.answer()
        if await dialling != "answered":
            return False
        await phone.wait(SETTLE)
        modem.flush_keys()
        prompt = codecs.encode(tone([1000.0], PROMPT_SECONDS, level_dbm0=-12.0), modem.codec)
        await modem.play(prompt)
        pressing = asyncio.create_task(phone.press(KEYS))
        keys = [await modem.next_key(5.0) for _ in KEYS]
        await pressing
        await phone.hang_up()
        await modem.hang_up()
        return "".join(k or "" for k in keys) == KEYS
    finally:
        await wait_cancelled(dialling)


async def _round(lines: int, speed: float) -> Round:
    personalities = [PERSONALITIES[i % len(PERSONALITIES)] for i in range(lines)]
    async with Rig(lines, personalities, speed=speed) as rig:
        modems = [VoiceModem(str(m.link), clock=rig.clock, rings_to_answer=1) for m in rig.modems]
        await asyncio.gather(*(m.open() for m in modems))
        try:
            start_emulated = rig.clock.now()
            start_wall, start_cpu = time.monotonic(), time.process_time()
            results = await asyncio.gather(
                *(_line(rig, modem, i) for i, modem in enumerate(modems)),
                return_exceptions=True,
            )
            wall = time.monotonic() - start_wall
            cpu = time.process_time() - start_cpu
            emulated = rig.clock.now() - start_emulated
        finally:
            await asyncio.gather(*(m.close() for m in modems), return_exceptions=True)
    completed = sum(1 for r in results if r is True)
    return Round(lines, speed, emulated, wall, cpu, completed)


async def main() -> None:
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    print(f"{'lines':>5} {'speed':>6} {'emulated s':>10} {'wall s':>7} {'cpu s':>6} "
          f"{'kept up':>7} {'calls ok':>8} {'line-s/cpu-s':>12} {'RTF at N':>8}")  # fmt: skip
    capacity: float | None = None
    best = 0.0
    for lines in LINE_COUNTS:
        speed = MAX_SPEED if capacity is None else min(MAX_SPEED, HEADROOM * capacity / lines)
        if speed < 1.0:
            print(f"{lines:>5}  (skipped: would run slower than real time)")
            break
        r = await _round(lines, speed)
        capacity = r.line_seconds_per_cpu_second
        rtf = capacity / lines
        print(
            f"{lines:>5} {speed:>6.1f} {r.emulated:>10.1f} {r.wall:>7.2f} {r.cpu:>6.2f} "
            f"{r.kept_up:>7.2f} {r.completed:>4}/{lines:<3} {capacity:>12.1f} {rtf:>8.1f}"
        )
        if r.completed == lines and r.kept_up > 0.9:
            best = max(best, capacity)
    print()
    print("line-s/cpu-s: emulated line-seconds carried per CPU-second (emulator + ptys + driver)")
    print("RTF at N: how many times faster than real time N lines can run on one core")
    r = await _round(REAL_TIME_LINES, 1.0)
    print()
    print(
        f"real time, {r.lines} lines: {r.completed}/{r.lines} calls completed, "
        f"clock kept up {r.kept_up:.3f}, one core {100 * r.cpu / r.wall:.0f}% busy "
        f"({r.line_seconds_per_cpu_second:.0f} line-s/cpu-s)"
    )
    best = max(best, r.line_seconds_per_cpu_second if r.completed == r.lines else 0.0)
    print(f"estimate: about {int(best)} lines at real time on one core (CPU-bound extrapolation)")


if __name__ == "__main__":
    asyncio.run(main())
