"""The relay against scripted lines: keys one at a time, the card learned, no PIN kept.

The bank and the caller are fakes on a fast virtual time scale: the bank
"speaks" (loud audio) when it asks something and is silent while it waits,
and reports its machine result as keys; the caller answers each question
the bank asks. test_payment_e2e.py runs the same leg through the daemon on the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from loguru import logger

from daemon1521.billing.cards import luhn_ok, mask_card
from daemon1521.clock import LoopClock
from daemon1521.telebank.leg import BankLeg, PaymentOutcome
from tests.fakes import PROFILE, SCALE, FakeBank, FakeCaller, NamePrompts

BILL, PAYMENT = "0000471112321", "25041209"
PIN = "83917"


def with_luhn(prefix15: str) -> str:
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


CARD = with_luhn("622106938271645")


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
