"""The relay against scripted lines: keys one at a time, the card learned, no PIN kept.

The bank and the caller are fakes on a fast virtual time scale: the bank
"speaks" (loud audio) when it asks something and is silent while it waits,
and reports its machine result as keys; the caller answers each question
the bank asks. test_payment_e2e.py runs the same leg through the daemon on the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
from loguru import logger

from daemon1521.billing.cards import luhn_ok, mask_card
from daemon1521.clock import LoopClock
from daemon1521.modem.linewatch import HungUp
from daemon1521.modem.voice import CallEnded
from daemon1521.telebank.leg import BankLeg, PaymentOutcome
from daemon1521.telebank.profile import load_profile
from tests.test_dialog import NamePrompts

SCALE = 50.0
BLOCK = 160
PROFILE = load_profile()
BILL, PAYMENT = "0000471112321", "25041209"
PIN = "83917"


def with_luhn(prefix15: str) -> str:
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


CARD = with_luhn("622106938271645")


class FakeBank:
    """Asks after answering, after each navigation step, after the card (read-back),
    after the confirm key and after the PIN's #; then keys its result and hangs up."""

    codec = "ulaw"

    def __init__(self, result: str = "A0777#", dial: list[str] | None = None) -> None:
        self.result = result
        self.dial_results = deque(dial or ["answered"])
        self.sends: list[str] = []
        self.asked = 0
        self.speaking = 0  # blocks of speech left
        self.out: deque[str] = deque()
        self.typed: list[str] = []
        self.hung_up = False
        self.on_hook = True
        self.dials = 0

    def ask(self) -> None:
        self.asked += 1
        self.speaking = 40  # 0.8 s of "speech"

    async def dial(self, number: str, timeout: float | None = None) -> str:
        self.dials += 1
        result = self.dial_results.popleft() if self.dial_results else "answered"
        if result == "answered":
            self.on_hook = False
            self.ask()
        return result

    async def send_dtmf(self, keys: str) -> None:
        self.sends.append(keys)
        await asyncio.sleep(0.01 * len(keys) / SCALE)
        if len(self.sends) <= len(PROFILE.navigate):
            self.ask()
            return
        for key in keys:
            self.typed.append(key)
            if len(self.typed) == 16:
                self.ask()  # read-back
            elif len(self.typed) == 17:
                self.ask()  # "your PIN"
            elif key == "#":
                self.out.extend(self.result)

    async def record(self, timeout, on_audio: Callable[[np.ndarray], None], stop=None):
        while True:
            if self.hung_up:
                raise CallEnded(HungUp("busy_tone"))
            if self.out:
                key = self.out.popleft()
                if not self.out:
                    self.hung_up = True
                return key
            if stop is not None and stop.is_set():
                return None
            loud = self.speaking > 0
            self.speaking -= 1 if loud else 0
            on_audio(np.full(BLOCK, 3000 if loud else 0, dtype=np.int16))
            await asyncio.sleep(BLOCK / 8000 / SCALE)

    async def hang_up(self) -> None:
        self.on_hook = True


class FakeCaller:
    """Answers the bank's questions (its n-th answer after the n-th question heard)."""

    codec = "ulaw"

    def __init__(self, bank: FakeBank, answers: list[str], hang_up_after: int | None = None):
        self.bank = bank
        self.answers = deque(answers)
        self.keys: deque[str] = deque()
        self.heard = 0.0
        self.answered = len(PROFILE.navigate) + 1  # navigation questions are not the caller's
        self.hang_up_after = hang_up_after
        self.gone = False

    async def play(self, audio: bytes, *, barge_in: bool = True) -> str | None:
        self._check()
        self.heard += len(audio) / 8000
        await asyncio.sleep(len(audio) / 8000 / SCALE)
        return None

    async def record(self, timeout: float, on_audio, stop=None) -> str | None:
        """Listens until a key, ``stop`` or ``timeout``; answers a question once asked."""
        waited = 0.0
        while True:
            self._check()
            asked = self.bank.asked > self.answered - 1 and self.bank.speaking <= 0
            if not self.keys and asked and self.answers:
                self.answered += 1
                given = self.answered - 1 - len(PROFILE.navigate) - 1
                if self.hang_up_after is not None and given >= self.hang_up_after:
                    self.gone = True
                    self._check()
                self.keys.extend(self.answers.popleft())
            if self.keys:
                return self.keys.popleft()
            if waited >= timeout or (stop is not None and stop.is_set()):
                return None
            step = min(0.25, timeout - waited)
            await asyncio.sleep(step / SCALE)
            waited += step

    def _check(self) -> None:
        if self.gone:
            raise CallEnded(HungUp("busy_tone"))


async def run(bank: FakeBank, caller: FakeCaller, card: str | None = None, profile=PROFILE):
    leases: list[bool] = []

    @contextlib.asynccontextmanager
    async def lease() -> AsyncIterator[FakeBank]:
        leases.append(True)
        try:
            yield bank
        finally:
            leases.append(False)

    leg = BankLeg(caller, lease, profile, NamePrompts(), name="relay", clock=LoopClock(SCALE))
    async with asyncio.timeout(20):
        result = await leg.run(BILL, PAYMENT, card)
    assert leases == [True, False]
    assert bank.on_hook
    return result


@pytest.fixture
def logs() -> list[str]:
    lines: list[str] = []
    sink = logger.add(lines.append, level=0, format="{message} {extra}")
    yield lines
    logger.remove(sink)


async def test_a_payment_relays_each_key_alone_and_keeps_no_pin(logs: list[str]):
    bank = FakeBank()
    caller = FakeCaller(bank, [CARD, "1", PIN + "#"])
    result = await run(bank, caller)
    assert result.outcome is PaymentOutcome.PAID and result.tracking == "777"
    assert result.learned == CARD and result.card_masked == mask_card(CARD)
    relayed = bank.sends[len(PROFILE.navigate) :]
    assert relayed == list(CARD + "1" + PIN + "#")  # one key per send, in order
    assert bank.sends[: len(PROFILE.navigate)] == ["3", BILL + "#", PAYMENT + "#"]
    text = "\n".join(logs) + repr(result)
    assert PIN not in text
    assert CARD not in text
    assert caller.heard > 0  # the bank's words reached the caller


async def test_a_remembered_card_is_keyed_by_the_daemon(logs: list[str]):
    bank = FakeBank()
    caller = FakeCaller(bank, [PIN + "#"])
    caller.answered += 2  # the card and its confirmation are not the caller's
    result = await run(bank, caller, card=CARD)
    assert result.outcome is PaymentOutcome.PAID
    assert result.learned is None and result.card_masked == mask_card(CARD)
    assert bank.sends[len(PROFILE.navigate) : len(PROFILE.navigate) + 2] == [CARD, "1"]
    assert "".join(bank.typed) == CARD + "1" + PIN + "#"
    assert PIN not in "\n".join(logs)


@pytest.mark.parametrize(
    ("frame", "outcome", "learned"),
    [
        ("A1#", PaymentOutcome.DECLINED_PIN, CARD),
        ("A2#", PaymentOutcome.INSUFFICIENT_FUNDS, CARD),
        ("A3#", PaymentOutcome.CARD_REFUSED, None),
        # the bank went on to the PIN: it accepted the card, whatever its result says
        ("A0B7#", PaymentOutcome.RESULT_UNKNOWN, CARD),
    ],
)
async def test_results(frame: str, outcome: PaymentOutcome, learned: str | None):
    bank = FakeBank(result=frame)
    result = await run(bank, FakeCaller(bank, [CARD, "1", PIN + "#"]))
    assert result.outcome is outcome
    assert result.learned == learned


async def test_retyped_card_is_not_learned():
    bank = FakeBank()
    wrong = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)
    # the caller rejects the read-back with 2 and the fake bank takes the rest as PIN
    result = await run(bank, FakeCaller(bank, [wrong, "2", PIN + "#"]))
    assert result.learned is None


async def test_caller_hanging_up_at_the_pin_cuts_the_bank(logs: list[str]):
    bank = FakeBank()
    caller = FakeCaller(bank, [CARD, "1", PIN + "#"], hang_up_after=2)
    result = await run(bank, caller)
    assert result.outcome is PaymentOutcome.CALLER_HUNG_UP and result.caller_gone
    assert "#" not in bank.typed and bank.on_hook


async def test_bank_busy_then_answering_and_never_answering():
    bank = FakeBank(dial=["busy", "answered"])
    result = await run(bank, FakeCaller(bank, [CARD, "1", PIN + "#"]))
    assert bank.dials == 2 and result.outcome is PaymentOutcome.PAID
    bank = FakeBank(dial=["no_answer", "busy", "no_dialtone"])
    caller = FakeCaller(bank, [])
    result = await run(bank, caller)
    assert bank.dials == PROFILE.dial.attempts
    assert result.outcome is PaymentOutcome.BANK_UNREACHABLE


async def test_no_outbound_line():
    @contextlib.asynccontextmanager
    async def none() -> AsyncIterator[None]:
        yield None

    bank = FakeBank()
    leg = BankLeg(FakeCaller(bank, []), none, PROFILE, NamePrompts(), clock=LoopClock(SCALE))
    result = await leg.run(BILL, PAYMENT)
    assert result.outcome is PaymentOutcome.BANK_BUSY and bank.dials == 0


async def test_caller_hanging_up_on_hold_stops_the_navigation():
    bank = FakeBank()
    caller = FakeCaller(bank, [])
    plays = 0
    real_play = caller.play

    async def play(audio: bytes, *, barge_in: bool = True) -> str | None:
        nonlocal plays
        plays += 1
        if plays == 3:  # "connecting", then hold: gone during the hold
            caller.gone = True
        return await real_play(audio, barge_in=barge_in)

    caller.play = play  # type: ignore[method-assign]
    result = await run(bank, caller)
    assert result.outcome is PaymentOutcome.CALLER_HUNG_UP and result.caller_gone
    assert len(bank.sends) < len(PROFILE.navigate)  # cut before the bank was fully driven


@pytest.mark.parametrize("fault", ["hangs_up", "goes_silent"])
async def test_bank_failing_mid_payment_leaves_the_result_unknown(fault: str):
    class FailingBank(FakeBank):
        async def send_dtmf(self, keys: str) -> None:
            await super().send_dtmf(keys)
            if len(self.typed) == 17:  # the card confirmed: the PIN question never comes
                self.speaking = 0
                self.asked = -100
                if fault == "hangs_up":
                    self.hung_up = True

    bank = FailingBank()
    result = await run(bank, FakeCaller(bank, [CARD, "1", PIN + "#"]))
    assert result.outcome is PaymentOutcome.RESULT_UNKNOWN
    assert not result.caller_gone and result.tracking is None
    assert "#" not in bank.typed  # no PIN went anywhere
    assert result.learned is None  # the PIN phase never completed


@pytest.mark.parametrize("after", [0.05, 0.3])
async def test_a_stopped_call_frees_the_outbound_line(after: float):
    bank = FakeBank()
    leases: list[bool] = []

    @contextlib.asynccontextmanager
    async def lease() -> AsyncIterator[FakeBank]:
        leases.append(True)
        try:
            yield bank
        finally:
            leases.append(False)

    leg = BankLeg(FakeCaller(bank, [CARD]), lease, PROFILE, NamePrompts(), clock=LoopClock(SCALE))
    task = asyncio.create_task(leg.run(BILL, PAYMENT))
    await asyncio.sleep(after)  # on hold, or in the relay
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert leases == [True, False] and bank.on_hook
