"""Scripted subscribers: telephones that tests drive like a person would.

A :class:`Phone` hangs on an exchange line and offers an async script API in
emulated seconds: lift, dial, press keys (as DTMF audio), say something (any
audio), listen, answer, hang up. What it heard is kept sample for sample, and
recognised against known recordings (prompts) from that audio alone.

A person tells call progress by ear (ringback, busy, the fast congestion
tone, a voice answering). The phone reads the same facts from the exchange's
state of its own line instead of running tone detectors: that is exactly
what its owner would hear, and keeps a test's outcome independent of tone
detection thresholds. Everything the far end sends (prompts, DTMF, speech)
is judged from the audio itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np

from daemon1521.dsp.dtmf import KEYS, dtmf_tone
from daemon1521.dsp.tones import amplitude
from daemon1521.emulator.clock import FRAME, FRAME_SECONDS, RATE
from daemon1521.emulator.exchange import Exchange, Presentation
from daemon1521.emulator.line import CallerId, Endpoint, Line
from daemon1521.emulator.recognizer import Heard, PromptRecognizer

DialOutcome = Literal["answered", "busy", "no_answer", "congestion"]

SILENCE_LEVEL_DBM0 = -45.0
"""A received frame whose peak stays under a sine of this level is silence:
far below tones (-10 dBm0) and speech, well above rounding noise."""
SILENCE_PEAK = amplitude(SILENCE_LEVEL_DBM0)
DIAL_TONE_WAIT = 5.0
"""Seconds a caller waits for dial tone before giving up."""
DIAL_PAUSE = 0.3
"""Seconds between hearing dial tone and pressing the first key."""
REDIAL_PAUSE = 0.5
"""Seconds on hook before lifting again to get a fresh dial tone."""
RECOGNISE_EVERY = 0.25
"""Seconds of new audio between recogniser runs while waiting for a prompt."""
_RECOGNISE_MARGIN = RATE // 2
"""Samples before a recording's length that a recogniser window also covers."""


class _Tape:
    """Audio appended frame by frame, readable as one array without copying."""

    def __init__(self, capacity: int = RATE * 10) -> None:
        self._buf = np.zeros(capacity, dtype=np.int16)
        self._len = 0

    def append(self, frame: np.ndarray) -> None:
        end = self._len + len(frame)
        if end > len(self._buf):
            grown = np.zeros(max(end, 2 * len(self._buf)), dtype=np.int16)
            grown[: self._len] = self._buf[: self._len]
            self._buf = grown
        self._buf[self._len : end] = frame
        self._len = end

    def view(self, start: int = 0) -> np.ndarray:
        # Later appends never touch samples before _len, and growing copies
        # to a new buffer, so a view handed out stays valid and unchanged.
        view = self._buf[start : self._len]
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return self._len


class Phone(Endpoint):
    """A subscriber's telephone on an emulated exchange, driven by a script."""

    def __init__(
        self,
        exchange: Exchange,
        recordings: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.exchange = exchange
        self.clock = exchange.clock
        self.recordings = dict(recordings or {})
        self._recogniser = PromptRecognizer(self.recordings) if self.recordings else None
        self._longest = max((len(r) for r in self.recordings.values()), default=0)
        self.caller_ids: list[CallerId] = []
        self.rings = 0
        self.loop_breaks = 0
        self.polarity_reversals = 0
        self._ring_on = False
        self._ring_times: list[float] = []
        self._cid_times: list[float] = []
        self._tape = _Tape()
        self._sound_end = 0  # tape index just after the last frame with sound
        self._lifted_at = 0  # tape index when the phone last went off hook
        self._outgoing: deque[np.ndarray] = deque()
        self._head = 0
        self._queued = 0
        self._sent = 0
        self._drops = 0
        self._states: list[tuple[float, str]] = []

    @classmethod
    def on(
        cls,
        exchange: Exchange,
        number: str,
        presentation: Presentation = "number",
        recordings: Mapping[str, np.ndarray] | None = None,
        label: str | None = None,
    ) -> Phone:
        """A new phone on a new line ``number`` of ``exchange``."""
        phone = cls(exchange, recordings)
        exchange.add_line(number, phone, label=label, presentation=presentation)
        return phone

    # -- what the phone knows ---------------------------------------------------

    @property
    def number(self) -> str:
        return self._line().number

    @property
    def off_hook(self) -> bool:
        return self.line is not None and self.line.off_hook

    @property
    def is_ringing(self) -> bool:
        """Whether the bell is sounding right now (ringing voltage on)."""
        return self._ring_on

    @property
    def state(self) -> str:
        """The exchange's state of this line (what its owner hears or sees)."""
        return self.exchange.line_state(self._line())

    @property
    def heard(self) -> np.ndarray:
        """All audio received while off hook, in order (read-only int16)."""
        return self._tape.view()

    def forget_heard(self) -> None:
        """Drop the tape of what was heard (on hook only): a phone that calls
        again and again for hours (a load run) would otherwise keep 16 KB a
        second of line audio for good. Offsets into :attr:`heard` start over."""
        if self.off_hook:
            raise RuntimeError("forget_heard() while off hook: the call is still being heard")
        self._tape = _Tape()
        self._sound_end = self._lifted_at = 0

    def transcript(self) -> list[Heard]:
        """Recordings recognised in everything heard so far."""
        return self._need_recogniser().transcribe(self.heard)

    # -- script actions ---------------------------------------------------------

    def lift(self) -> None:
        """Go off hook (answers if ringing, otherwise asks for dial tone)."""
        if not self.off_hook:
            self._lifted_at = len(self._tape)
            self._line().lift()

    async def answer(self) -> None:
        """Lift the handset; connects the call if the phone is ringing."""
        self.lift()

    async def hang_up(self) -> None:
        """Put the handset down; anything still queued to send is dropped."""
        self._drop_outgoing()
        self._line().hang_up()

    async def wait(self, seconds: float) -> None:
        """Do nothing for ``seconds`` of emulated time."""
        await self.clock.sleep(seconds)

    def say(self, audio: np.ndarray) -> None:
        """Queue audio to send after anything already queued.

        int16 samples go as they are; float audio is taken as -1..1 full scale.
        """
        samples = np.asarray(audio)
        if samples.dtype.kind == "f":
            samples = np.clip(np.round(samples * 32767.0), -32768, 32767)
        self._enqueue(samples.astype(np.int16).ravel())

    async def press(self, keys: str, on: float = 0.12, gap: float = 0.12) -> None:
        """Press keys as DTMF audio; returns once the last key's tone is sent.

        Each key sounds for ``on`` seconds and is followed by ``gap`` seconds
        of silence (the last gap stays queued, so presses in a row keep their
        spacing). Hanging up meanwhile drops the rest; cancelling does too.
        """
        bad = [k for k in keys if k not in KEYS]
        if bad:
            raise ValueError(f"not DTMF keys: {''.join(bad)!r}")
        if not self.off_hook:
            raise RuntimeError("cannot press keys on hook")
        silence = np.zeros(round(gap * RATE), dtype=np.int16)
        last_tone_end = self._sent
        for key in keys:
            self._enqueue(dtmf_tone(key, on, rate=RATE))
            last_tone_end = self._queued
            self._enqueue(silence)
        drops = self._drops
        try:
            await self._until(lambda: self._sent >= last_tone_end or self._drops != drops)
        except asyncio.CancelledError:
            self._drop_outgoing()
            raise

    async def dial(self, number: str, answer_timeout: float = 60.0) -> DialOutcome:
        """Call ``number``: lift, wait for dial tone, key it, and wait for the outcome.

        Returns ``"answered"`` once connected, ``"busy"`` on busy tone,
        ``"congestion"`` on congestion tone before any ringback, and
        ``"no_answer"`` when ringback gave way to the exchange's no-answer
        tone. If nobody answers within ``answer_timeout`` seconds after the
        last digit, the caller gives up and hangs up (also ``"no_answer"``).
        Otherwise the line is left off hook with whatever the caller hears.
        A phone already off hook without dial tone hangs up and lifts again.
        """
        bad = [k for k in number if k not in KEYS]
        if not number or bad:
            raise ValueError(f"cannot dial {number!r}: not DTMF keys")
        if self.off_hook and self.state != "dialtone":
            await self.hang_up()
            await self.wait(REDIAL_PAUSE)
        self.lift()
        if not await self._until(lambda: self.state == "dialtone", DIAL_TONE_WAIT):
            raise RuntimeError(f"no dial tone on {self.number}: line is {self.state}")
        await self.wait(DIAL_PAUSE)
        mark = len(self._states)
        await self.press(number)
        outcome: list[DialOutcome] = []

        def decided() -> bool:
            if not self.off_hook:
                raise RuntimeError(f"{self.number} hung up while dialling")
            seen = [state for _, state in self._states[mark:]]
            for state in seen:
                if state == "connected":
                    outcome.append("answered")
                elif state == "busy":
                    outcome.append("busy")
                elif state == "congestion":
                    outcome.append("no_answer" if "ringback" in seen else "congestion")
                if outcome:
                    return True
            return False

        if await self._until(decided, answer_timeout):
            return outcome[0]
        rang = "ringback" in (state for _, state in self._states[mark:])
        await self.hang_up()
        return "no_answer" if rang else "congestion"

    async def wait_for_ring(self, timeout: float = 60.0) -> CallerId | None:
        """Wait up to ``timeout`` for an incoming call, then for its caller ID.

        A call already ringing counts. Once ringing, waits for the caller ID
        that comes between the first and second ring; returns it, or None if
        no call came in time or the second ring (or the end of ringing) came
        first with no caller ID.
        """
        if not await self._until(lambda: self.state == "ringing", timeout):
            return None
        since = self.exchange.alerting_since(self._line())
        if since is None:
            return None

        def this_call(times: list[float]) -> list[int]:
            return [i for i, t in enumerate(times) if t >= since]

        def settled() -> bool:
            return (
                bool(this_call(self._cid_times))
                or len(this_call(self._ring_times)) >= 2
                or self.state != "ringing"
            )

        await self._until(settled)
        ids = this_call(self._cid_times)
        return self.caller_ids[ids[0]] if ids else None

    async def wait_for_silence(self, quiet: float = 1.0, timeout: float = 60.0) -> bool:
        """Wait until nothing has been heard for ``quiet`` seconds (off hook).

        Silence already heard counts. False on timeout or if the phone is
        on hook (there is nothing to listen to).
        """
        need = round(quiet * RATE)
        return await self._until(
            lambda: (
                self.off_hook and len(self._tape) - max(self._sound_end, self._lifted_at) >= need
            ),
            timeout,
            give_up=lambda: not self.off_hook,
        )

    async def wait_heard(
        self, name: str, timeout: float = 60.0, since: int = 0, complete: bool = True
    ) -> bool:
        """Wait until the recording ``name`` has been recognised in what was heard.

        ``since`` is a sample index into :attr:`heard` (e.g. ``len(phone.heard)``
        taken earlier) so a prompt heard before it does not count. With
        ``complete`` (the default) the whole recording must have been heard;
        otherwise a cut-short one (as after barge-in) counts too.

        The recogniser looks at the audio every :data:`RECOGNISE_EVERY`
        seconds, over a window just long enough to hold any recording that
        ended since its last look, and not at all while only silence came.
        """
        recogniser = self._need_recogniser()
        if name not in self.recordings:
            raise KeyError(f"no recording named {name!r}")
        step = round(RECOGNISE_EVERY * RATE)
        reach = self._longest + _RECOGNISE_MARGIN
        checked = since
        found = False

        def heard_it(final: bool = False) -> bool:
            nonlocal checked, found
            end = len(self._tape)
            if found or end <= checked or (end - checked < step and not final):
                return found
            start = max(since, checked - reach)
            sound_in_window = self._sound_end > start
            new_sound = checked == since or self._sound_end > checked - _RECOGNISE_MARGIN
            if sound_in_window and new_sound:
                window = self._tape.view(start)
                found = any(
                    h.name == name and (h.complete or not complete)
                    for h in recogniser.transcribe(window)
                )
            checked = end
            return found

        return await self._until(heard_it, timeout) or heard_it(final=True)

    # -- Endpoint callbacks (from the exchange's tick) ---------------------------

    def transmit(self) -> np.ndarray | None:
        if not self._outgoing:
            return None
        head = self._outgoing[0]
        if len(head) - self._head >= FRAME:
            frame = head[self._head : self._head + FRAME]
            self._advance(FRAME)
            return frame
        frame = np.zeros(FRAME, dtype=np.int16)
        filled = 0
        while self._outgoing and filled < FRAME:
            head = self._outgoing[0]
            take = min(FRAME - filled, len(head) - self._head)
            frame[filled : filled + take] = head[self._head : self._head + take]
            filled += take
            self._advance(take)
        return frame

    def receive(self, frame: np.ndarray) -> None:
        self._tape.append(frame)
        if len(frame) and (frame.max() > SILENCE_PEAK or frame.min() < -SILENCE_PEAK):
            self._sound_end = len(self._tape)
        state = self.exchange.line_state(self._line())
        if not self._states or self._states[-1][1] != state:
            self._states.append((self.clock.now(), state))

    def ringing(self, on: bool) -> None:
        if on and not self._ring_on:
            self.rings += 1
            self._ring_times.append(self.clock.now())
        self._ring_on = on

    def caller_id(self, cid: CallerId) -> None:
        self.caller_ids.append(cid)
        self._cid_times.append(self.clock.now())

    def loop_break(self) -> None:
        self.loop_breaks += 1

    def polarity_reversal(self) -> None:
        self.polarity_reversals += 1

    # -- internals -----------------------------------------------------------------

    def _line(self) -> Line:
        if self.line is None:
            raise RuntimeError("phone is not on an exchange line")
        return self.line

    def _enqueue(self, samples: np.ndarray) -> None:
        if len(samples):
            self._outgoing.append(samples)
            self._queued += len(samples)

    def _advance(self, count: int) -> None:
        self._head += count
        self._sent += count
        if self._head >= len(self._outgoing[0]):
            self._outgoing.popleft()
            self._head = 0

    def _drop_outgoing(self) -> None:
        self._sent += sum(len(a) for a in self._outgoing) - self._head
        self._outgoing.clear()
        self._head = 0
        self._drops += 1

    def _need_recogniser(self) -> PromptRecognizer:
        if self._recogniser is None:
            raise RuntimeError("this phone was given no recordings to recognise")
        return self._recogniser

    async def _until(
        self,
        condition: Callable[[], bool],
        timeout: float | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> bool:
        """Check ``condition`` every frame of emulated time until it holds."""
        deadline = None if timeout is None else self.clock.now() + timeout
        while True:
            if condition():
                return True
            if give_up is not None and give_up():
                return False
            if deadline is not None and self.clock.now() >= deadline:
                return False
            await self.clock.sleep(FRAME_SECONDS)
