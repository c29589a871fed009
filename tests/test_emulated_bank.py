"""The emulated telephone bank, driven by a scripted phone: dialogue, ledger and faults.

Its refusals, dynamic PINs and card checks are exercised through the daemon in
test_payment_e2e.py; this file holds what needs no modem: a payment's tones
and ledger, the busy line, a hang-up and a garbled result.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from daemon1521.billing.cards import luhn_ok, mask_card
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.dsp.dtmf import DtmfDetector
from daemon1521.emulator.bank import TelephoneBank
from daemon1521.emulator.bank_voice import bank_voice
from daemon1521.emulator.clock import RATE, EmuClock
from daemon1521.emulator.exchange import Exchange
from daemon1521.emulator.phone import Phone
from daemon1521.emulator.toneplan import TonePlan

PLAN = TonePlan(no_answer_timeout=8.0, park_after=2.0, first_digit_timeout=3.0)
BANK_NUMBER = "88881521"
CALLER = "02133334444"
BILL = make_bill_id(4_711, 123)
PAYMENT = make_payment_id(BILL, 250_000, 4, 12)


def with_luhn(prefix15: str) -> str:
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


CARD = with_luhn("622106123456789")
POOR = with_luhn("502229111122223")
DYNAMIC = with_luhn("610433555566667")
UNKNOWN = with_luhn("627353999988887")
PIN = "83917"


def bank_recordings() -> dict[str, np.ndarray]:
    """What a caller's phone recognises: the bank's prompts (not its pauses)."""
    voice = bank_voice()
    return {name: voice.samples(name) for name in voice.catalog.names() if name != "bank_pause"}


@pytest.fixture
async def site():
    exchange = Exchange(EmuClock(speed=60), PLAN)
    await exchange.start()
    recordings = bank_recordings()
    bank = TelephoneBank.on_exchange(exchange, BANK_NUMBER)
    bank.add_account(CARD, 10_000_000, PIN)
    bank.add_account(POOR, 1_000, "12345")
    bank.add_account(DYNAMIC, 5_000_000)
    phone = Phone.on(exchange, CALLER, recordings=recordings)
    async with bank:
        yield exchange, bank, phone
    if phone.off_hook:
        await phone.hang_up()
    await exchange.stop()


def keys_in(audio: np.ndarray) -> str:
    return "".join(e.key for e in DtmfDetector(rate=RATE).feed(audio) if e.kind == "down")


async def step(phone: Phone, prompt: str, keys: str) -> bool:
    """Wait for the bank to say ``prompt`` (from now on), then key ``keys``."""
    if not await phone.wait_heard(prompt, 30, since=len(phone.heard)):
        return False
    await phone.press(keys)
    return True


async def pay(
    phone: Phone, card: str, pin: str, confirm: str = "1", bill: str = BILL, payment: str = PAYMENT
) -> bool:
    """Call the bank and pay; False as soon as the bank does not ask what comes next."""
    assert await phone.dial(BANK_NUMBER) == "answered"
    for prompt, keys in (
        ("bank_welcome", "3"),
        ("bank_ask_bill", bill + "#"),
        ("bank_ask_payment", payment + "#"),
        ("bank_ask_card", card),
        ("bank_card_confirm", confirm),
        ("bank_ask_pin", pin + "#"),
    ):
        if not await step(phone, prompt, keys):
            return False
    return True


async def test_a_bank_with_two_lines_takes_two_calls_at_once_and_keeps_one_ledger():
    exchange = Exchange(EmuClock(speed=60), PLAN)
    await exchange.start()
    recordings = bank_recordings()
    # its own tracking series, as each bank of a rack split over processes has
    bank = TelephoneBank.on_exchange(exchange, BANK_NUMBER, lines=2, first_tracking=3_100_201)
    bank.add_account(CARD, 10_000_000, PIN)
    phones = [Phone.on(exchange, n, recordings=recordings) for n in (CALLER, "02133335555")]
    other = make_bill_id(4_712, 123)
    bills = [(BILL, PAYMENT), (other, make_payment_id(other, 250_000, 4, 12))]
    try:
        async with bank:
            paying = [
                pay(phone, CARD, PIN, bill=bill, payment=payment)
                for phone, (bill, payment) in zip(phones, bills, strict=True)
            ]
            assert await asyncio.gather(*paying) == [True, True]
            for phone in phones:
                assert await phone.wait_heard("bank_paid", 30)
    finally:
        for phone in phones:
            if phone.off_hook:
                await phone.hang_up()
        await exchange.stop()
    assert sorted(d.bill_id for d in bank.ledger) == sorted(b for b, _ in bills)
    assert sorted(d.tracking for d in bank.ledger) == ["3100201", "3100202"]
    assert bank.accounts[CARD].balance == 10_000_000 - 2 * 250_000
    assert [c.outcome for c in bank.calls] == ["paid", "paid"]


async def test_a_payment_is_debited_once_with_a_tracking_number(site):
    _, bank, phone = site
    await pay(phone, CARD, PIN)
    assert await phone.wait_heard("bank_paid", 30)
    assert await phone.wait_heard("bank_goodbye", 30)
    await phone.wait(2)
    assert phone.state != "connected"  # the bank hung up
    names = [h.name for h in phone.transcript()]
    # the card read back digit by digit
    start = names.index("bank_card_is")
    assert "".join(n[-1] for n in names[start + 1 : start + 17]) == CARD
    [debit] = bank.ledger
    assert debit.card == mask_card(CARD) and debit.amount == 250_000
    assert debit.bill_id == BILL and debit.payment_id == PAYMENT
    assert keys_in(phone.heard).endswith(f"A0{debit.tracking}#")
    assert bank.accounts[CARD].balance == 10_000_000 - 250_000
    assert bank.calls[-1].outcome == "paid"
    # the same bill again: no second debit
    await phone.hang_up()
    mark = len(phone.heard)
    assert not await pay(phone, CARD, PIN)
    assert await phone.wait_heard("bank_already_paid", 30, since=mark)
    assert len(bank.ledger) == 1


async def test_busy_then_free(site):
    _, bank, phone = site
    bank.busy_for(5)
    await phone.wait(0.5)
    assert await phone.dial(BANK_NUMBER) == "busy"
    await phone.hang_up()
    await phone.wait(6)
    assert await phone.dial(BANK_NUMBER) == "answered"


async def test_hang_up_at_the_pin_and_garbled_result(site):
    _, bank, phone = site
    bank.faults.hang_up_at = "pin"
    assert not await pay(phone, CARD, PIN)
    await phone.wait(2)
    assert phone.state != "connected" and bank.ledger == []
    await phone.hang_up()
    bank.faults.hang_up_at = None
    bank.faults.garble_result = True
    mark = len(phone.heard)
    assert await pay(phone, CARD, PIN)
    assert await phone.wait_heard("bank_goodbye", 40, since=mark)
    assert keys_in(phone.heard[mark:]).startswith("A0B")
    assert len(bank.ledger) == 1  # it paid; only its report is garbled
