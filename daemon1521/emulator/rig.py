"""A wired site: an exchange, voice modems on a 1521 hunt group, and phones.

The emulate command, the demo, the tests and the daemon's ``--emulated``
mode all need the same wiring; this is it, in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daemon1521.emulator.clock import EmuClock
from daemon1521.emulator.exchange import Exchange, Presentation
from daemon1521.emulator.modem import EmulatedModem
from daemon1521.emulator.phone import DialOutcome, Phone
from daemon1521.emulator.toneplan import TonePlan

SERVICE_NUMBER = "1521"
FIRST_LINE_NUMBER = 2188001001
"""The modems' own directory numbers (a Tehran-style block), one per line."""


class Rig:
    """An exchange with ``lines`` voice modems answering the service number.

    ``speed``: emulated seconds per real second, or None to run as fast as the
    host allows (a daemon in this process then runs on :attr:`clock` too).
    """

    def __init__(
        self,
        lines: int = 1,
        personalities: Sequence[str] = ("conexant-cx93001",),
        *,
        speed: float | None = 1.0,
        link_dir: Path | str | None = None,
        service_number: str = SERVICE_NUMBER,
        plan: TonePlan | None = None,
        outbound: int = 0,
    ) -> None:
        """``lines`` modems on the hunt group, and ``outbound`` more after them that
        only dial out (their numbers are not in the group, like a site's bank lines)."""
        if lines < 1:
            raise ValueError(f"an emulated site needs at least one line, got {lines}")
        if not personalities:
            raise ValueError("name at least one modem personality")
        self.clock = EmuClock(speed)
        self.exchange = Exchange(self.clock, plan or TonePlan())
        self.service_number = service_number
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if link_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="daemon1521-emu-")
            link_dir = self._tmp.name
        self.link_dir = Path(link_dir)
        self.link_dir.mkdir(parents=True, exist_ok=True)
        self.modems: list[EmulatedModem] = []
        self.personalities: list[str] = []
        modem_lines = []
        for index in range(lines + outbound):
            personality = personalities[index % len(personalities)]
            modem = EmulatedModem(self.clock, personality, link=self.link_dir / f"ttyModem{index}")
            modem_lines.append(
                self.exchange.add_line(str(FIRST_LINE_NUMBER + index), modem, f"line{index + 1}")
            )
            self.modems.append(modem)
            self.personalities.append(personality)
        self.lines = modem_lines
        self.exchange.add_hunt_group(service_number, modem_lines[:lines])
        self.phones: dict[str, Phone] = {}

    async def start(self) -> None:
        for modem in self.modems:
            await modem.open()
        await self.exchange.start()

    async def stop(self) -> None:
        await self.exchange.stop()
        for modem in self.modems:
            with contextlib.suppress(Exception):
                await modem.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> Rig:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def describe(self) -> list[dict[str, Any]]:
        """One record per modem: what an operator points software at."""
        return [
            {
                "line": index + 1,
                "number": line.number,
                "personality": personality,
                "pty": modem.pty_path,
                "link": str(modem.link) if modem.link else None,
            }
            for index, (line, modem, personality) in enumerate(
                zip(self.lines, self.modems, self.personalities, strict=True)
            )
        ]

    def phone(
        self,
        number: str,
        presentation: Presentation = "number",
        recordings: Mapping[str, np.ndarray] | None = None,
    ) -> Phone:
        """The subscriber phone with this number, created on first use."""
        phone = self.phones.get(number)
        if phone is None:
            phone = Phone.on(self.exchange, number, presentation, recordings=recordings)
            self.phones[number] = phone
        return phone

    async def place_call(
        self,
        caller: str,
        keys: str = "",
        *,
        to: str | None = None,
        after_answer: float = 3.0,
        hold: float = 10.0,
        presentation: Presentation = "number",
    ) -> DialOutcome:
        """A subscriber calls, presses ``keys`` once answered, stays, hangs up."""
        phone = self.phone(caller, presentation)
        outcome = await phone.dial(to or self.service_number)
        try:
            if outcome == "answered":
                await phone.wait(after_answer)
                if keys:
                    await phone.press(keys)
                await phone.wait(hold)
        finally:
            await phone.hang_up()
        return outcome


async def wait_cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to finish, whatever it raised."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
