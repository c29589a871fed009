"""Scripted callers for load runs: the 1521 flow again and again, by ear.

Each caller dials 1521, listens for each question and answers it with human
key timing (150-300 ms from one key to the next), up to the payment offer,
which it declines; then it waits for the line to hang up, rests a moment and
calls again. A seeded mix of styles covers what a rack meets: plain callers,
callers who barge in on a prompt, callers who type ahead, and callers who hang
up mid-call. Callers start staggered so that rings do not all coincide.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from daemon1521.emulator.rig import Rig
from daemon1521.ivr import flow1521
from daemon1521.testbed.caller import Caller
from daemon1521.testbed.ears import Ears

FIRST_CALLER = 9_121_000_000
"""Callers' numbers (0912 100 0000 on), far from the modems' own block."""
STYLES: tuple[tuple[str, float], ...] = (
    ("plain", 0.45),
    ("barge-in", 0.2),
    ("type-ahead", 0.2),
    ("hang-up", 0.15),
)
"""Call styles and how often each is drawn."""
KEY_ON = (0.08, 0.11)
KEY_GAP = (0.07, 0.19)
"""Seconds a key sounds and the silence after it: 150-300 ms key to key."""
THINK = (0.2, 0.6)
"""Seconds a caller takes to react once a question has ended."""
REST = (1.0, 3.0)
"""Seconds on hook between one call and the next."""
HANG_UP_AFTER = (3.0, 25.0)
"""Seconds after the answer at which a hang-up caller leaves."""


@dataclass(frozen=True)
class CallResult:
    """One scripted call: its style and how it ended (``done`` when it went to
    the line's own hang-up after the payment offer)."""

    caller: str
    style: str
    ended: str


class _Site:
    """What :class:`~daemon1521.testbed.caller.Caller` needs: the wiring and the ears."""

    def __init__(self, rig: Rig, ears: Ears) -> None:
        self.rig = rig
        self.ears = ears


class LoadCallers:
    """``lines`` scripted callers on ``rig``, each typing one of ``bill_ids``."""

    def __init__(
        self,
        rig: Rig,
        ears: Ears,
        bill_ids: Sequence[str],
        *,
        callers: int,
        stagger: float = 0.5,
        seed: int = 1521,
    ) -> None:
        if not bill_ids:
            raise ValueError("load callers need at least one bill ID to type")
        self.site = _Site(rig, ears)
        self.bill_ids = list(bill_ids)
        self.callers = callers
        self.stagger = stagger
        self.seed = seed
        self.results: list[CallResult] = []
        self.in_progress = 0

    async def run(self) -> None:
        """Run every caller until cancelled; results gather in :attr:`results`."""
        async with asyncio.TaskGroup() as group:
            for index in range(self.callers):
                group.create_task(self._subscriber(index))

    async def _subscriber(self, index: int) -> None:
        rng = random.Random(self.seed * 100_003 + index)
        number = f"0{FIRST_CALLER + index}"
        caller = Caller(self.site, self.site.rig.phone(number))
        bill_id = self.bill_ids[index % len(self.bill_ids)]
        await caller.wait(index * self.stagger)
        while True:
            style = rng.choices([s for s, _ in STYLES], [w for _, w in STYLES])[0]
            self.in_progress += 1
            try:
                ended = await self._call(caller, style, bill_id, rng)
            finally:
                self.in_progress -= 1
                with contextlib.suppress(Exception):
                    await caller.hang_up()
            self.results.append(CallResult(number, style, ended))
            await caller.wait(rng.uniform(*REST))

    async def _call(self, caller: Caller, style: str, bill_id: str, rng: random.Random) -> str:
        try:
            await caller.dial()
        except RuntimeError as exc:
            return str(exc)
        script = asyncio.create_task(self._script(caller, style, bill_id, rng))
        if style != "hang-up":
            return await script
        leave = asyncio.create_task(caller.wait(rng.uniform(*HANG_UP_AFTER)))
        done, _ = await asyncio.wait({script, leave}, return_when=asyncio.FIRST_COMPLETED)
        for task in (script, leave):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if script in done and not script.cancelled():
            return script.result()
        return "caller hung up mid-call"

    async def _script(self, caller: Caller, style: str, bill_id: str, rng: random.Random) -> str:
        try:
            if style == "barge-in":
                await caller.await_sound()
                await caller.wait(rng.uniform(1.0, 3.0))  # into the welcome or the question
            else:
                await self._hear(caller, flow1521.ASK_BILL_ID, rng)
            if style == "type-ahead":
                await self._type(caller, bill_id + "#1", rng)
            else:
                await self._type(caller, bill_id + "#", rng)
                if style == "barge-in":
                    await caller.wait(rng.uniform(1.5, 3.0))  # into the read-back
                else:
                    await self._hear(caller, flow1521.BILL_ENTERED_CONFIRM, rng)
                await self._type(caller, "1", rng)
            await self._hear(caller, flow1521.OFFER_REMEMBER_BILL, rng)
            await self._type(caller, "2", rng)
            await self._hear(caller, flow1521.OFFER_PAYMENT, rng)
            await self._type(caller, "2", rng)
        except AssertionError as exc:
            return f"script broke off: {exc}".replace(caller.phone.number, "caller")
        if not await caller.until_line_hangs_up():
            return "line never hung up"
        return "done"

    @staticmethod
    async def _hear(caller: Caller, prompt: str, rng: random.Random) -> None:
        await caller.hear(prompt)
        await caller.wait(rng.uniform(*THINK))

    @staticmethod
    async def _type(caller: Caller, keys: str, rng: random.Random) -> None:
        """Press ``keys`` one by one at a human pace; later sound counts as new."""
        caller.mark = len(caller.phone.heard)
        for key in keys:
            await caller.phone.press(key, on=rng.uniform(*KEY_ON), gap=rng.uniform(*KEY_GAP))
