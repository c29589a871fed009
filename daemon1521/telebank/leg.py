"""The bank leg: dial the telephone bank on an outbound line and relay the caller to it.

TELEBANK.md's sequence: take an outbound line (none free: "the bank lines
are busy"), dial with the profile's retries ("the bank cannot be reached"),
navigate while the caller hears hold audio, optionally key a remembered card
and its confirmation, then relay until the bank ends, and free the outbound
line whatever happened.

The relay is a half-duplex speakerphone. The bank's line records all the
time (leaving it only to send a key), so the relay knows when the bank
speaks. While it speaks, its audio is played to the caller (a key pressed
stops the playback and goes to the bank); while it is silent (waiting for
digits), the caller's line listens, which is also when a hang-up is heard,
even on chips that report nothing during playback. Each caller key is sent
to the bank as it arrives, one at a time; the :class:`CardFollower` sees it
on the way, and PIN keys are never logged or kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

import numpy as np
from loguru import logger

from daemon1521.billing.cards import BinTable, mask_card
from daemon1521.clock import Clock, LoopClock
from daemon1521.dsp import codecs
from daemon1521.modem.errors import ModemError
from daemon1521.modem.voice import CallEnded, LiveAudio
from daemon1521.telebank.follower import CardFollower
from daemon1521.telebank.profile import Step, TelebankProfile
from daemon1521.telebank.result import BankResult, ResultReader

RATE = 8000
SOUND_PEAK = 400
"""A received sample above this (about -38 dBFS) is the bank speaking."""
LISTEN_MAX = 30.0
"""Longest single listen on the caller's line while the bank is silent. A listen
ends early when the bank has something to say; it is not cut into short
slices, because the caller's hang-up is heard in it (a busy tone's cadence
takes more than a second to tell) and every new listen starts that afresh."""
PAUSE_KEPT = 0.4
"""Seconds of the bank's silence still played (pauses between its words);
longer silence is the bank waiting for digits."""
LEAD = 0.3
"""Seconds of bank audio gathered before playing it to the caller: a jitter
buffer against the bursts in which a recording arrives over the port."""
RECORD_SLICE = 600.0
"""Longest single recording on the bank's line: it is left only to send a key
(each restart loses a moment of the bank's audio)."""
HOLD_PIECE = 1.0
"""Hold audio is played in pieces this long, so the relay starts soon after answer."""
CLOSE_WAIT = 5.0
"""Real seconds the bank's line gets to end its recording before it is cut off."""
RESULT_GRACE = 1.5
"""Seconds the relay lets the bank finish after its machine result, before cutting."""
RESULT_WAIT = 30.0
"""Seconds the leg stays on the bank's line for its result when the caller hangs up
after giving the PIN in full: the payment may have gone through, and the record
should say so rather than "hung up"."""

# Prompts the leg plays itself (prompts/fa/catalog.toml).
CONNECTING = "connecting_bank"
HOLD = "hold"
BANK_LINES_BUSY = "bank_busy"
BANK_UNREACHABLE = "bank_unreachable"
PROMPTS = (CONNECTING, HOLD, BANK_LINES_BUSY, BANK_UNREACHABLE)


class PaymentOutcome(StrEnum):
    """How one payment attempt ended: the vocabulary of ``payments.result``."""

    PAID = "paid"
    DECLINED_PIN = "declined_pin"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CARD_REFUSED = "card_refused"
    BANK_UNREACHABLE = "bank_unreachable"
    BANK_BUSY = "bank_busy"
    CALLER_HUNG_UP = "caller_hung_up"
    RESULT_UNKNOWN = "result_unknown"


class _Listening(Protocol):
    """A line in a call that the leg listens on (a VoiceModem)."""

    codec: str

    async def record(
        self,
        timeout: float,
        on_audio: Callable[[np.ndarray], None],
        stop: asyncio.Event | None = None,
    ) -> str | None: ...


class CallerLine(_Listening, Protocol):
    """The caller's line, as the relay uses it."""

    async def play(self, audio: bytes, *, barge_in: bool = True) -> str | None: ...


class BankLine(_Listening, Protocol):
    """An outbound line, as the leg drives it."""

    async def dial(self, number: str, timeout: float | None = None) -> str: ...

    async def send_dtmf(self, keys: str) -> None: ...

    async def hang_up(self) -> None: ...


class Prompts(Protocol):
    def sequence(self, names: list[str], codec: str) -> bytes: ...


Lease = Callable[[], AbstractAsyncContextManager[BankLine | None]]


@dataclass(frozen=True)
class LegResult:
    """What the bank leg did. ``learned`` (a card the caller typed and the bank
    accepted) is kept out of ``repr``; everything else may be logged."""

    outcome: PaymentOutcome
    started_at: datetime
    ended_at: datetime
    code: str | None = None
    tracking: str | None = None
    card_masked: str | None = None
    learned: str | None = field(default=None, repr=False)
    caller_gone: bool = False
    detail: str = ""


class _CallerGone(Exception):
    pass


def _ignore(samples: np.ndarray) -> None:
    """The caller's audio is not relayed: the bank listens for keys only."""


class _BankSide:
    """The bank's line: always recording, leaving it only to send keys."""

    def __init__(self, line: BankLine, profile: TelebankProfile, clock: Clock) -> None:
        self.line = line
        self.clock = clock
        self.reader = ResultReader(profile.end.result)
        self.relaying = False
        self.audio: deque[np.ndarray] = deque()
        self.buffered = 0
        self.quiet_samples = 0
        self.sound_since_mark = False
        self.ended: str | None = None
        self.result_at: float | None = None
        self.machine_talk = False
        """The bank keys its machine result: its audio is no longer relayed."""
        self.changed = asyncio.Event()
        self.wake = asyncio.Event()
        """Set when the caller's line should stop listening: the bank has audio to
        play, has given its result, or has ended."""
        self.lead = 0
        """Samples of the bank's audio gathered before they are played."""
        self.live: LiveAudio | None = None
        self.sending = False
        self.codec = "slinear"
        self._to_send: deque[str] = deque()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telebank-bank-side")

    async def close(self) -> None:
        """Stop recording (the modem finishes its operation cleanly, then the line is free)."""
        task, self._task = self._task, None
        if self.ended is None:
            self.ended = "the relay ended"
        self._to_send.clear()
        self._stop.set()
        if task is not None:
            try:
                await self.clock.wait_for(asyncio.shield(task), CLOSE_WAIT)
            except TimeoutError:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ModemError):
                await task

    def send(self, keys: str) -> None:
        self._to_send.append(keys)
        self.sending = True
        self._stop.set()

    def quiet_for(self) -> float:
        """Seconds of the bank's audio since it last made a sound: counted in
        samples received, so a host that runs behind its clock cannot fake a silence."""
        return self.quiet_samples / RATE

    def take_audio(self, most: int) -> np.ndarray:
        parts: list[np.ndarray] = []
        taken = 0
        while self.audio and taken < most:
            part = self.audio.popleft()
            if taken + len(part) > most:
                self.audio.appendleft(part[most - taken :])
                part = part[: most - taken]
            parts.append(part)
            taken += len(part)
        self.buffered -= taken
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def ready(self) -> bool:
        """Enough of the bank's audio is buffered to start playing it to the caller
        (a lead's worth, or all of a short sound it has finished)."""
        return self.buffered >= self.lead or (
            self.buffered > 0 and self.quiet_for() >= self.lead / RATE
        )

    def _heard(self, samples: np.ndarray) -> None:
        loud = bool(len(samples)) and int(np.abs(samples.astype(np.int32)).max()) > SOUND_PEAK
        if loud:
            self.quiet_samples = 0
            self.sound_since_mark = True
        else:
            self.quiet_samples += len(samples)
        # the bank's long silences are not played: the caller's line listens then
        speaking = loud or self.quiet_for() < PAUSE_KEPT
        live = self.live
        if live is not None and (not speaking or self.machine_talk):
            live.finish()  # the bank fell silent: the caller's line may listen again
        if self.relaying and not self.machine_talk and speaking:
            if live is not None and not live.finished:
                live.extend(codecs.encode(samples, self.codec))
            else:
                self.audio.append(samples)
                self.buffered += len(samples)
        if self.ready():
            self.wake.set()
        self.changed.set()

    def _bank_key(self, key: str) -> None:
        """A key in the bank's audio: its machine result, which the caller does not
        hear (tones for a machine; what is still buffered is dropped, and at most
        the moment of the first tone before the modem reported it is played)."""
        self.reader.key(key)
        if self.reader.started and not self.machine_talk:
            self.machine_talk = True
            self.audio.clear()
            self.buffered = 0
            if self.live is not None:
                self.live.finish()
        if self.reader.result is not None and self.result_at is None:
            self.result_at = self.clock.now()
            self.wake.set()
        self.changed.set()

    async def _run(self) -> None:
        try:
            while self.ended is None:
                if self._to_send:
                    self.sending = True
                    await self.line.send_dtmf(self._to_send.popleft())
                    continue
                self.sending = False
                self.changed.set()
                self._stop.clear()
                key = await self.line.record(RECORD_SLICE, self._heard, self._stop)
                if key is not None:
                    self._bank_key(key)
        except CallEnded as exc:
            self.ended = f"the bank hung up ({exc.hung_up.reason})"
        except ModemError as exc:
            self.ended = f"the outbound line failed: {exc}"
        except Exception as exc:
            logger.opt(exception=True).error("bank side of the relay failed")
            self.ended = f"the relay failed: {type(exc).__name__}"
        finally:
            if self.live is not None:
                self.live.finish()  # no more audio will come: the caller's playback ends
            self.wake.set()
            self.changed.set()


class BankLeg:
    """One payment's bank leg; :meth:`run` once."""

    def __init__(
        self,
        caller: CallerLine,
        lease: Lease,
        profile: TelebankProfile,
        prompts: Prompts,
        *,
        name: str = "bank leg",
        clock: Clock | None = None,
        bins: BinTable | None = None,
        lead: float = LEAD,
    ) -> None:
        self.caller = caller
        self.lead = lead
        self.lease = lease
        self.profile = profile
        self.prompts = prompts
        self.name = name
        self.clock = clock if clock is not None else LoopClock()
        self.follower = CardFollower(profile, bins)
        self.started_at = datetime.now(UTC)
        self._stop_hold = asyncio.Event()

    # -- the sequence ----------------------------------------------------------------------

    async def run(self, bill_id: str, payment_id: str, card: str | None = None) -> LegResult:
        """Pay ``bill_id``/``payment_id``; ``card`` is a remembered card the caller confirmed."""
        masked = mask_card(card) if card else None
        try:
            await self._say([CONNECTING])
            async with self.lease() as bank:
                if bank is None:
                    logger.info("{}: no outbound line free", self.name)
                    await self._say([BANK_LINES_BUSY])
                    return self._result(PaymentOutcome.BANK_BUSY, detail="no outbound line free")
                try:
                    return await self._on_line(bank, bill_id, payment_id, card, masked)
                finally:
                    with contextlib.suppress(ModemError):
                        await bank.hang_up()
                    logger.info("{}: outbound line on hook", self.name)
        except _CallerGone:
            return self._result(
                PaymentOutcome.CALLER_HUNG_UP,
                card_masked=masked,
                caller_gone=True,
                detail="the caller hung up before the bank answered",
            )
        finally:
            self.follower.forget()

    async def _on_line(
        self, bank: BankLine, bill_id: str, payment_id: str, card: str | None, masked: str | None
    ) -> LegResult:
        self._stop_hold = asyncio.Event()
        hold = asyncio.create_task(self._hold(), name="telebank-hold")
        side: _BankSide | None = None
        try:
            try:
                if await self._dial(bank):
                    side = _BankSide(bank, self.profile, self.clock)
                    side.start()
                    await self._navigate_on_hold(side, hold, bill_id, payment_id, card)
            finally:
                self._stop_hold.set()
                caller_gone = await hold
            if caller_gone:
                return self._result(
                    PaymentOutcome.CALLER_HUNG_UP,
                    card_masked=masked,
                    caller_gone=True,
                    detail="the caller hung up while the bank was being reached",
                )
            if side is None:
                await self._say([BANK_UNREACHABLE])
                return self._result(
                    PaymentOutcome.BANK_UNREACHABLE, detail="busy, no answer or no dial tone"
                )
            gone = await self._relay(side)
            return self._finish(side, gone, masked)
        finally:  # whatever happened, stopped calls included: the bank's line stops recording
            if side is not None:
                await side.close()

    async def _navigate_on_hold(
        self,
        side: _BankSide,
        hold: asyncio.Task[bool],
        bill_id: str,
        payment_id: str,
        card: str | None,
    ) -> None:
        """Navigate while the caller hears hold audio; stop if the caller goes first."""
        navigating = asyncio.create_task(
            self._navigate(side, bill_id, payment_id, card), name="telebank-navigate"
        )
        try:
            await asyncio.wait({navigating, hold}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # the hold audio ended first (the caller hung up), or we are stopped
            if not navigating.done():
                navigating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await navigating
        if not navigating.cancelled():
            navigating.result()
            side.relaying = True  # from here on the caller hears the bank

    async def _navigate(
        self, side: _BankSide, bill_id: str, payment_id: str, card: str | None
    ) -> None:
        """The profile's steps (the caller hears hold audio), then a remembered card."""
        for step in self.profile.navigate:
            await self._step(side, step, self.profile.keys_for(step, bill_id, payment_id))
        if card and side.ended is None:
            await self._step(side, Step(wait=15.0, quiet=0.8), card)
            await self._step(side, Step(wait=30.0, quiet=0.8), self.profile.card.confirm_key)
            self.follower.start_at_pin()

    async def _dial(self, bank: BankLine) -> bool:
        dial = self.profile.dial
        for attempt in range(1, dial.attempts + 1):
            result = await bank.dial(dial.number, timeout=dial.answer_timeout)
            logger.info("{}: dialling the bank, attempt {}: {}", self.name, attempt, result)
            if result == "answered":
                return True
            if attempt < dial.attempts:
                await self.clock.sleep(dial.retry_pause)
        return False

    async def _hold(self) -> bool:
        """Hold audio until the relay starts; True if the caller hung up meanwhile."""
        audio = self.prompts.sequence([HOLD], self.caller.codec)
        piece = max(1, int(HOLD_PIECE * 8000 * codecs.bytes_per_sample(self.caller.codec)))
        try:
            while not self._stop_hold.is_set():
                for start in range(0, len(audio), piece):
                    if self._stop_hold.is_set():
                        break
                    await self.caller.play(audio[start : start + piece], barge_in=False)
        except CallEnded:
            return True
        return False

    async def _step(self, side: _BankSide, step: Step, keys: str) -> None:
        """Wait for the bank to have spoken and fallen quiet (or ``step.wait``), then key."""
        while side.sending and side.ended is None:  # the previous keys are still going out
            side.changed.clear()
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(side.changed.wait(), 0.05)
        deadline = self.clock.now() + step.wait
        side.sound_since_mark = False
        while side.ended is None and self.clock.now() < deadline:
            if side.sound_since_mark and side.quiet_for() >= step.quiet:
                break
            side.changed.clear()
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(side.changed.wait(), 0.05)
        if keys and side.ended is None:
            side.send(keys)

    async def _relay(self, side: _BankSide) -> bool:
        """Bank audio to the caller, caller keys to the bank; True if the caller hung up."""
        side.relaying = True
        codec = side.codec = self.caller.codec
        side.lead = int(self.lead * RATE)
        silence = self.profile.end.silence
        logger.info("{}: relaying the caller to the bank", self.name)
        try:
            while side.ended is None:
                listen = min(LISTEN_MAX, silence - side.quiet_for())
                if side.result_at is not None:
                    listen = min(listen, side.result_at + RESULT_GRACE - self.clock.now())
                    if listen <= 0:
                        break
                if side.quiet_for() >= silence:
                    side.ended = "the bank stayed silent"
                    break
                if side.ready():
                    # the bank speaks: one playback that grows as its audio comes
                    live = LiveAudio(codecs.encode(side.take_audio(side.buffered), codec))
                    side.live = live
                    try:
                        key = await self.caller.play(live)
                    finally:
                        live.finish()
                        side.live = None
                else:
                    # the bank is silent: the caller's line listens (and hears a hang-up)
                    side.wake.clear()
                    if side.ready() or side.ended is not None:
                        continue
                    key = await self.caller.record(max(listen, 0.05), _ignore, side.wake)
                if key is not None:
                    self._forward(side, key)
        except CallEnded:
            if self.follower.pin_given:
                logger.info(
                    "{}: the caller hung up after the PIN; waiting for the bank's result",
                    self.name,
                )
                side.relaying = False
                await self._await_result(side)
            else:
                logger.info("{}: the caller hung up during the relay; cutting the bank", self.name)
            return True
        return False

    async def _await_result(self, side: _BankSide) -> None:
        """Stay on the bank's line, with nobody listening, until its result, its
        hang-up, its silence or :data:`RESULT_WAIT`."""
        deadline = self.clock.now() + RESULT_WAIT
        while side.ended is None and side.result_at is None and self.clock.now() < deadline:
            if side.quiet_for() >= self.profile.end.silence:
                break
            side.changed.clear()
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(side.changed.wait(), 0.25)

    def _forward(self, side: _BankSide, key: str) -> None:
        if key not in "0123456789*#":
            return
        in_pin = self.follower.in_pin
        self.follower.key(key)
        side.send(key)
        # which key it was is never logged, in any phase
        logger.trace("{}: a key relayed{}", self.name, " (secret phase)" if in_pin else "")

    # -- results -----------------------------------------------------------------------------

    def _finish(self, side: _BankSide, caller_gone: bool, masked: str | None) -> LegResult:
        result: BankResult | None = side.reader.ended()
        outcome: PaymentOutcome
        if result is not None and result.outcome != "garbled":
            outcome = PaymentOutcome(result.outcome)
        elif caller_gone and not self.follower.pin_given:
            outcome = PaymentOutcome.CALLER_HUNG_UP
        else:
            outcome = PaymentOutcome.RESULT_UNKNOWN
        self.follower.bank_result(
            None if result is None or result.outcome == "garbled" else result.outcome
        )
        learned = None if caller_gone and result is None else self.follower.learned()
        if learned is not None and masked is None:
            masked = mask_card(learned)
        detail = side.ended or ""
        if result is not None and result.outcome == "garbled":
            detail = "the bank's machine result was garbled"
        logger.info("{}: bank leg over: {}{}", self.name, outcome, f" ({detail})" if detail else "")
        return self._result(
            outcome,
            code=result.code if result else None,
            tracking=result.tracking if result else None,
            card_masked=masked,
            learned=learned,
            caller_gone=caller_gone,
            detail=detail,
        )

    def _result(self, outcome: PaymentOutcome, **fields: object) -> LegResult:
        return LegResult(
            outcome,
            self.started_at,
            datetime.now(UTC),
            **fields,  # type: ignore[arg-type]
        )

    async def _say(self, names: list[str]) -> None:
        try:
            await self.caller.play(self.prompts.sequence(names, self.caller.codec), barge_in=False)
        except CallEnded:
            raise _CallerGone from None
