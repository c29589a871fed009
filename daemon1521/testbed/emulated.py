"""``daemon1521 run --emulated N``: the real daemon on emulated modems in one process.

The wiring lives in the test bed so that the daemon package never imports
the emulator: the daemon sees only ports, as it would on real hardware.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from daemon1521.clock import Clock
from daemon1521.config import LineConfig
from daemon1521.daemon.app import Daemon
from daemon1521.emulator.rig import Rig


async def run_emulated(
    daemon_factory: Callable[[Sequence[LineConfig], Clock], Daemon],
    lines: int,
    personalities: Sequence[str],
    speed: float,
) -> int:
    """Run a daemon on ``lines`` emulated modems (an exchange in this process),
    on the exchange's clock."""
    rig = Rig(lines, personalities, speed=speed)
    await rig.start()
    try:
        emulated = [
            LineConfig(
                name=f"line{index + 1}",
                port=str(modem.link),
                label=f"emulated {personality}, number {line.number}",
            )
            for index, (modem, personality, line) in enumerate(
                zip(rig.modems, rig.personalities, rig.lines, strict=True)
            )
        ]
        return await daemon_factory(emulated, rig.clock).run()
    finally:
        await rig.stop()
