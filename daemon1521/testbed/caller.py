"""A scripted subscriber who listens for a question, then presses keys."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Protocol, TypeVar

import numpy as np

from daemon1521.emulator.phone import Phone
from daemon1521.emulator.rig import Rig
from daemon1521.testbed.ears import SAMPLE_RATE, SILENCE_PEAK, Ears

REPLY_DELAY = 0.3
"""Seconds a scripted caller takes to react once a question has been heard."""
QUIET_SECONDS = 1.0
"""Silence after a prompt that tells a caller the line is waiting for an answer."""
POLL_SECONDS = 0.1
GROUP_PAUSE = 0.2
"""A silence this long between read-back digits separates digit groups."""
HANG_UP_WAIT = 30.0
"""Seconds a caller waits for the line to hang up after the last prompt."""


_T = TypeVar("_T")


class CallerSite(Protocol):
    """What a :class:`Caller` needs of the site it calls: the wiring and the ears.

    ``listening`` is where callers recognise prompts: None for the event loop
    itself, or a one-thread executor. Recognising a prompt takes 10-40 ms,
    which at real time would hold up every emulated line in the loop
    (the rack measures latencies of a few ms at the modems), so a rack hears
    on a thread; the numpy work then runs beside the loop, and the loop waits
    for the GIL at most a switch interval.
    """

    rig: Rig
    ears: Ears
    listening: Executor | None


class Caller:
    """A scripted subscriber: listens for a question, then presses keys."""

    def __init__(self, site: CallerSite, phone: Phone) -> None:
        self.site = site
        self.phone = phone
        self.start = 0
        self.mark = 0
        self.pressed: list[tuple[int, str]] = []
        """(sample index, keys as the transcript shows them)."""

    async def dial(self) -> None:
        self.start = self.mark = len(self.phone.heard)
        self.pressed = []
        outcome = await self.phone.dial(self.site.rig.service_number)
        if outcome != "answered":
            raise RuntimeError(f"1521 did not answer: {outcome}")

    async def hear(self, prompt: str, timeout: float = 60.0) -> None:
        """Wait until ``prompt`` has been heard in full since the last key press, and
        then silence: the line is waiting for an answer.

        The caller looks only when the line has fallen quiet after new sound,
        and only for this one prompt at the end of what it heard, so that
        listening costs little: recognition runs in the event loop, and a
        busy loop would make the emulated line lag the driver's clock.
        """
        await self.hear_one_of((prompt,), timeout)

    async def hear_one_of(
        self, prompts: Sequence[str], timeout: float = 60.0, *, or_call_ends: bool = False
    ) -> str | None:
        """As :meth:`hear`, for whichever of ``prompts`` ends what was heard first;
        its name. With ``or_call_ends``, None once the far end has cleared
        instead (what was said before is in :meth:`audio`)."""
        heard_end = self.mark
        last_sound: int | None = None
        judged = -1
        waited = 0.0
        quiet = round(QUIET_SECONDS * SAMPLE_RATE)
        while waited < timeout:
            if or_call_ends and self.phone.state != "connected":
                return None
            audio = self.phone.heard
            loud = np.flatnonzero(np.abs(audio[heard_end:].astype(np.int32)) > SILENCE_PEAK)
            if len(loud):
                last_sound = heard_end + int(loud[-1])
            heard_end = len(audio)
            if last_sound is not None and last_sound != judged and heard_end - last_sound >= quiet:
                judged = last_sound
                for prompt in prompts:
                    said = audio[self.mark : heard_end]
                    if await self.recognise(self.site.ears.ends_with, prompt, said):
                        self.mark = heard_end
                        return prompt
            await self.phone.wait(POLL_SECONDS)
            waited += POLL_SECONDS
        shown = prompts[0] if len(prompts) == 1 else " or ".join(prompts)
        raise AssertionError(f"{self.phone.number} never heard {shown!r}")

    async def recognise(self, judge: Callable[..., _T], *args: object) -> _T:
        """``judge(*args)`` where the site listens (see :class:`CallerSite`)."""
        executor = self.site.listening
        if executor is None:
            return judge(*args)
        return await asyncio.get_running_loop().run_in_executor(executor, judge, *args)

    async def press(self, keys: str, shown: str | None = None) -> None:
        """Press keys; what the line plays from the first key on counts as new.
        ``shown`` is what the transcript prints instead (a masked card, a PIN as *)."""
        self.mark = len(self.phone.heard)
        self.pressed.append((self.mark, keys if shown is None else shown))
        await self.phone.press(keys)

    async def answer(
        self, prompt: str, keys: str, timeout: float = 60.0, shown: str | None = None
    ) -> None:
        """Hear ``prompt``, think for a moment, press ``keys``."""
        await self.hear(prompt, timeout)
        await self.phone.wait(REPLY_DELAY)
        await self.press(keys, shown)

    async def wait(self, seconds: float) -> None:
        await self.phone.wait(seconds)

    async def await_sound(self, timeout: float = 30.0) -> None:
        """Wait until the line plays something new (after the last key or :meth:`hear`)."""
        waited = 0.0
        while waited < timeout:
            fresh = self.phone.heard[self.mark :]
            if len(fresh) and int(np.abs(fresh.astype(np.int32)).max()) > SILENCE_PEAK:
                return
            await self.phone.wait(POLL_SECONDS)
            waited += POLL_SECONDS
        raise AssertionError(f"{self.phone.number} heard nothing new")

    async def until_line_hangs_up(self, timeout: float = HANG_UP_WAIT) -> bool:
        """Wait until 1521 ends the call (the connection is gone); then hang up."""
        waited = 0.0
        while self.phone.state == "connected" and waited < timeout:
            await self.phone.wait(0.1)
            waited += 0.1
        ended = self.phone.state != "connected"
        await self.phone.hang_up()
        return ended

    async def hang_up(self) -> None:
        await self.phone.hang_up()

    # -- what happened ---------------------------------------------------------

    def audio(self) -> np.ndarray:
        return self.phone.heard[self.start :]

    def heard(self, unknown: bool = False) -> list[tuple[str | None, bool]]:
        """(canonical prompt name, complete) recognised in this call's audio, in order;
        with ``unknown``, sound that matched no prompt too (name None)."""
        return [(h.name, h.complete) for h in self.site.ears.heard(self.audio(), unknown)]

    def transcript(self, cards: Iterable[str] = ()) -> list[tuple[str, str]]:
        """("heard" | "pressed", text) in time order. Number words run together on
        one line, with a comma where the line paused between digit groups. Where
        a card in ``cards`` was read out, its middle digits are shown as *
        (first 6 and last 4 kept, as everywhere a card is shown)."""
        ears = self.site.ears
        events: list[tuple[float, float, str | None, str]] = []
        for h in ears.heard(self.audio()):
            assert h.name is not None
            events.append((h.start, h.end, h.name, ears.text(h.name)))
        _mask_cards(events, ears, cards)
        for index, keys in self.pressed:
            at = (index - self.start) / SAMPLE_RATE
            events.append((at, at, None, keys))
        events.sort(key=lambda e: (e[0], e[2] is not None))
        lines: list[tuple[str, str]] = []
        numbers_end: float | None = None  # end of the number run the last line holds
        for start, end, name, text in events:
            if name is None:
                lines.append(("pressed", text))
                numbers_end = None
            elif ears.is_number(name) and numbers_end is not None:
                joint = "، " if start - numbers_end >= GROUP_PAUSE else " "
                lines[-1] = ("heard", lines[-1][1] + joint + text)
                numbers_end = end
            else:
                shown = text or f"({name})"  # a chime says no words
                if lines and lines[-1] == ("heard", shown):
                    continue  # a prompt played again and again (hold audio) is shown once
                lines.append(("heard", shown))
                numbers_end = end if ears.is_number(name) else None
        return lines


def _mask_cards(
    events: list[tuple[float, float, str | None, str]], ears: Ears, cards: Iterable[str]
) -> None:
    """Replace the middle digits of every read-out of ``cards`` with * in place."""
    digits = [ears.digit(name) if name else None for _, _, name, _ in events]
    for card in cards:
        for start in range(len(events) - len(card) + 1):
            if "".join(d or "x" for d in digits[start : start + len(card)]) != card:
                continue
            for index in range(start + 6, start + len(card) - 4):
                begin, end, name, _ = events[index]
                events[index] = (begin, end, name, "*")
