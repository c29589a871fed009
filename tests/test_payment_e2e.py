"""Paying end to end: a caller dials 1521 on the emulator, the daemon answers on one
modem, dials the emulated telephone bank on another and relays the caller to it.

The cases where the chips' behaviour matters run on both the Conexant and the
USR personality (a hang-up during playback, the relay's timing, the result
and the main payment); cases that differ only in what the bank says
alternate between them. After each,
the bank's ledger, the call and payment records, both lines back idle on the
exchange and the outbound pool whole. Callers have a remembered bill, so the
scripts start at the payment offer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from loguru import logger

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.billing.cards import luhn_ok, mask_card
from daemon1521.billing.store import CallRecord, PaymentRecord, Store
from daemon1521.billing.vault import KEY_FILE, Vault
from daemon1521.daemon.control import arequest
from daemon1521.emulator.bank import TelephoneBank
from daemon1521.emulator.bank_voice import bank_voice
from daemon1521.telebank.profile import load_profile
from daemon1521.testbed.caller import Caller
from daemon1521.testbed.ears import Ears
from daemon1521.testbed.site import EmulatedSite
from tests.flow_scenarios import BILLS, CALLER, DEBT, DEBT_BILL, OTHER_BILL

PERSONALITIES = ["conexant-cx93001", "usr-5637"]
BANK_NUMBER = load_profile().dial.number


def with_luhn(prefix15: str) -> str:
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


CARD = with_luhn("622106123456789")  # Parsian, well funded
PIN = "83917"
OTHER_CARD = with_luhn("610433111122223")  # Melli, well funded
OTHER_PIN = "246810"
POOR = with_luhn("502229111122223")  # Pasargad, nearly empty
POOR_PIN = "12345"
DYNAMIC = with_luhn("589210555566667")  # Sepah, one-time PINs only
VISA = "4111111111111111"  # Luhn-valid, not Shetab
MISTYPED = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)  # fails Luhn


@pytest.fixture(scope="module")
def ears() -> Ears:
    return Ears(PromptLibrary(PromptCatalog("fa")), [bank_voice()])


@dataclass
class Paying:
    site: EmulatedSite
    bank: TelephoneBank
    caller: Caller

    async def to_the_bank(self, first: Callable[[], None] | None = None) -> None:
        """Dial 1521, confirm the remembered bill, accept the payment offer (doing
        ``first`` just before)."""
        await self.caller.dial()
        await self.caller.answer("remembered_bill_confirm", "1")
        await self.caller.hear("offer_payment")
        if first is not None:
            first()
        await self.caller.press("1")

    async def new_card(self, card: str = CARD, pin: str = PIN) -> None:
        await self.caller.answer("bank_ask_card", card)
        await self.caller.answer("bank_card_confirm", "1")
        await self.caller.answer("bank_ask_pin", pin + "#")

    async def ends(self) -> tuple[CallRecord, list[PaymentRecord]]:
        """The call is over: both lines idle, the pool whole; its records."""
        assert await self.caller.until_line_hangs_up(timeout=300.0)  # dialling retries
        return await self.settled()

    async def settled(self) -> tuple[CallRecord, list[PaymentRecord]]:
        site = self.site
        await site.wait_idle(calls=1, timeout=300.0)
        for line in range(len(site.lines)):
            await site.wait_idle(line=line, timeout=300.0)
        for number in site.rig.lines:
            assert site.rig.exchange.line_state(number) == "idle", number
        assert site.daemon is not None and site.daemon.supervisor is not None
        assert site.daemon.supervisor.pool.free() == len(site.lines) - 1
        record = site.last_call()
        payments = site.store.payments_of_calls([record.id]).get(record.id, [])
        return record, payments

    def heard(self) -> list[str]:
        return [name for name, _ in self.caller.heard() if name is not None]


def remember_card(store_path: Path, caller: str, card: str) -> None:
    """A card remembered on an earlier call (sealed with the daemon's key)."""
    vault = Vault.open(store_path.parent / KEY_FILE)
    with Store.open(store_path) as store:
        store.remember_card(caller, vault.seal(card, caller), mask_card(card))


@contextlib.asynccontextmanager
async def paying(
    tmp_path: Path,
    ears: Ears,
    personality: str,
    *,
    outbound: int = 1,
    card: str | None = None,
) -> AsyncIterator[Paying]:
    store_path = tmp_path / "calls.db"
    site = EmulatedSite(
        store_path,
        ears=ears,
        bills=BILLS,
        personality=personality,
        telebank=True,
        outbound=outbound,
    )
    with Store.open(store_path) as store:
        store.remember_bill(CALLER, DEBT_BILL)
    if card is not None:
        remember_card(store_path, CALLER, card)
    async with site:
        bank = site.bank
        assert bank is not None
        bank.add_account(CARD, 10_000_000, PIN)
        bank.add_account(OTHER_CARD, 10_000_000, OTHER_PIN)
        bank.add_account(POOR, 1_000, POOR_PIN)
        bank.add_account(DYNAMIC, 5_000_000)
        yield Paying(site, bank, site.caller(CALLER))


def only_payment(payments: list[PaymentRecord], result: str) -> PaymentRecord:
    assert [p.result for p in payments] == [result]
    payment = payments[0]
    assert payment.bill_id == DEBT_BILL and payment.amount == DEBT
    assert payment.ended_at is not None
    return payment


def debited(bank: TelephoneBank, card: str) -> None:
    """Exactly one debit, of the bill's amount, from ``card``."""
    assert [(d.card, d.bill_id, d.amount) for d in bank.ledger] == [
        (mask_card(card), DEBT_BILL, DEBT)
    ]


each_chip = pytest.mark.parametrize("personality", PERSONALITIES)
on_conexant = pytest.mark.parametrize("personality", PERSONALITIES[:1])
on_usr = pytest.mark.parametrize("personality", PERSONALITIES[1:])


# -- paying -------------------------------------------------------------------------------


@each_chip
async def test_a_new_card_is_remembered_then_used_on_the_next_call(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality) as p:
        await p.to_the_bank()
        await p.new_card()
        await p.caller.answer("offer_remember_card", "1")
        record, payments = await p.ends()
        payment = only_payment(payments, "paid")
        debited(p.bank, CARD)
        assert payment.tracking == p.bank.ledger[0].tracking
        assert payment.card_masked == mask_card(CARD)
        assert record.outcome == "paid"
        heard = p.heard()
        assert heard[heard.index("offer_payment") + 1] == "connecting_bank"
        for name in ("bank_ask_card", "bank_card_is", "bank_ask_pin", "payment_success"):
            assert name in heard
        assert heard[-3:] == ["offer_remember_card", "card_saved", "goodbye"]
        remembered = p.site.store.remembered_card(CALLER)
        assert remembered is not None and remembered.masked == mask_card(CARD)
        assert CARD.encode() not in remembered.ciphertext

        # next month: another bill; the remembered card is read back and keyed by 1521
        p.site.store.remember_bill(CALLER, OTHER_BILL)
        await p.caller.wait(1.0)
        await p.to_the_bank()
        await p.caller.answer("remembered_card_confirm", "1")
        # on hold while 1521 navigates, keys the card and the bank reads it back
        await p.caller.answer("bank_ask_pin", PIN + "#", timeout=120.0)
        record, payments = await p.ends()
        assert [pay.result for pay in payments] == ["paid"]
        assert payments[0].bill_id == OTHER_BILL
        assert payments[0].card_masked == mask_card(CARD)
        assert [(d.card, d.bill_id) for d in p.bank.ledger] == [
            (mask_card(CARD), DEBT_BILL),
            (mask_card(CARD), OTHER_BILL),
        ]
        heard = p.heard()
        assert "remembered_card_is" in heard and "bank_ask_card" not in heard
        assert "offer_remember_card" not in heard  # it was the remembered card


@on_conexant
async def test_a_remembered_card_is_replaced_by_a_new_one(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality, card=CARD) as p:
        await p.to_the_bank()
        await p.caller.answer("remembered_card_confirm", "2")
        await p.new_card(OTHER_CARD, OTHER_PIN)
        await p.caller.answer("offer_remember_card", "1")
        _, payments = await p.ends()
        assert only_payment(payments, "paid").card_masked == mask_card(OTHER_CARD)
        debited(p.bank, OTHER_CARD)
        remembered = p.site.store.remembered_card(CALLER)
        assert remembered is not None and remembered.masked == mask_card(OTHER_CARD)


@on_usr
async def test_a_remembered_card_dropped_by_the_caller(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality, card=CARD) as p:
        await p.to_the_bank()
        await p.caller.answer("remembered_card_confirm", "9")
        await p.new_card()
        await p.caller.answer("offer_remember_card", "2")
        _, payments = await p.ends()
        only_payment(payments, "paid")
        debited(p.bank, CARD)
        assert "card_forgotten" in p.heard()
        assert p.site.store.remembered_card(CALLER) is None


@on_conexant
async def test_a_dynamic_pin_pays_once(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality) as p:
        pin = p.bank.issue_dynamic_pin(DYNAMIC)
        await p.to_the_bank()
        await p.new_card(DYNAMIC, pin)
        await p.caller.answer("offer_remember_card", "2")
        _, payments = await p.ends()
        only_payment(payments, "paid")
        debited(p.bank, DYNAMIC)
        assert p.site.store.remembered_card(CALLER) is None


# -- declined -----------------------------------------------------------------------------


@on_usr
@pytest.mark.parametrize(
    ("card", "pin", "result", "told"),
    [
        (CARD, "11111", "declined_pin", "wrong_pin"),
        (POOR, POOR_PIN, "insufficient_funds", "insufficient_funds"),
    ],
)
async def test_a_declined_payment_debits_nothing(
    tmp_path, ears, personality, card, pin, result, told
):
    async with paying(tmp_path, ears, personality) as p:
        await p.to_the_bank()
        await p.new_card(card, pin)
        await p.caller.answer("offer_remember_card", "2")  # the bank accepted the card
        record, payments = await p.ends()
        assert only_payment(payments, result).tracking is None
        assert p.bank.ledger == []
        assert record.outcome == "declined"
        assert told in p.heard()


@on_conexant
async def test_a_card_that_is_not_shetab_is_refused(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality) as p:
        await p.to_the_bank()
        await p.caller.answer("bank_ask_card", VISA)
        for _ in range(2):  # the bank asks again, twice
            await p.caller.answer("bank_ask_card", VISA)
        record, payments = await p.ends()
        only_payment(payments, "card_refused")
        assert p.bank.ledger == [] and record.outcome == "declined"
        heard = p.heard()
        assert "bank_card_invalid" in heard and heard[-2:] == ["card_refused", "goodbye"]
        assert "offer_remember_card" not in heard


@on_usr
async def test_a_card_retyped_after_a_mistake_pays_but_is_not_learned(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality) as p:
        await p.to_the_bank()
        await p.caller.answer("bank_ask_card", MISTYPED)
        await p.new_card()
        _, payments = await p.ends()
        only_payment(payments, "paid")
        debited(p.bank, CARD)
        heard = p.heard()
        assert "bank_card_invalid" in heard
        assert "offer_remember_card" not in heard  # in doubt: nothing learned
        assert p.site.store.remembered_card(CALLER) is None


# -- the bank's faults --------------------------------------------------------------------


@on_conexant
async def test_the_bank_busy_then_answering_on_the_retry(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality) as p:
        # engaged from the payment offer on: the first attempt hears busy
        await p.to_the_bank(lambda: p.bank.busy_for(10.0))
        await p.new_card()
        await p.caller.answer("offer_remember_card", "2")
        _, payments = await p.ends()
        only_payment(payments, "paid")
        debited(p.bank, CARD)
        outbound = p.site.rig.lines[1]
        attempts = [e.event for e in p.site.rig.exchange.events if e.line == outbound.number]
        assert attempts.count(f"calling {BANK_NUMBER}") == 2 and "busy" in attempts


@on_usr
async def test_the_bank_never_answering(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality) as p:
        p.bank.faults.no_answer = True
        await p.to_the_bank()
        record, payments = await p.ends()
        only_payment(payments, "bank_unreachable")
        assert p.bank.ledger == [] and p.bank.calls == []
        assert record.outcome == "bank_unreachable"
        assert p.heard()[-2:] == ["bank_unreachable", "goodbye"]


@on_conexant
async def test_no_outbound_line_free(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality, outbound=0) as p:
        await p.to_the_bank()
        record, payments = await p.ends()
        only_payment(payments, "bank_busy")
        assert p.bank.calls == [] and record.outcome == "bank_busy"
        assert p.heard()[-2:] == ["bank_busy", "goodbye"]


@each_chip
async def test_the_bank_hanging_up_mid_payment(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality) as p:
        p.bank.faults.hang_up_at = "pin"
        await p.to_the_bank()
        await p.caller.answer("bank_ask_card", CARD)
        await p.caller.answer("bank_card_confirm", "1")
        record, payments = await p.ends()
        only_payment(payments, "result_unknown")
        assert p.bank.ledger == [] and record.outcome == "payment_unknown"
        assert p.heard()[-2:] == ["payment_unknown", "goodbye"]


@each_chip
async def test_a_garbled_result_leaves_the_payment_unknown(tmp_path, ears, personality):
    async with paying(tmp_path, ears, personality) as p:
        p.bank.faults.garble_result = True
        await p.to_the_bank()
        await p.new_card()
        record, payments = await p.ends()
        only_payment(payments, "result_unknown")
        debited(p.bank, CARD)  # the bank did pay: the caller is told to check with it
        assert record.outcome == "payment_unknown"
        assert "payment_unknown" in p.heard()


# -- the caller hangs up ------------------------------------------------------------------


async def during_the_card(p: Paying) -> None:
    await p.caller.hear("bank_ask_card")
    await p.caller.press(CARD[:6])


async def during_the_pin(p: Paying) -> None:
    await p.caller.answer("bank_ask_card", CARD)
    await p.caller.answer("bank_card_confirm", "1")
    await p.caller.answer("bank_ask_pin", PIN[:2])


async def during_the_result(p: Paying) -> None:
    await p.new_card()


@each_chip
@pytest.mark.parametrize(
    ("script", "result", "debits", "cut_within"),
    [
        (during_the_card, "caller_hung_up", 0, 2.5),
        (during_the_pin, "caller_hung_up", 0, 2.5),
        (during_the_result, "paid", 1, 30.0),  # the leg stays for the bank's result
    ],
    ids=["card", "pin", "result"],
)
async def test_the_caller_hanging_up(
    tmp_path, ears, personality, script, result, debits, cut_within
):
    """While the bank waits for keys, the caller's line listens: a hang-up is heard
    there (both chips: about 1.9 s of line time, the busy tone's cadence) and
    the bank's line is cut at once, so no PIN prompt talks to an empty line."""
    async with paying(tmp_path, ears, personality) as p:
        await p.to_the_bank()
        await script(p)
        await p.caller.wait(0.5)
        hung_up = p.site.rig.clock.now()
        await p.caller.hang_up()
        record, payments = await p.settled()
        only_payment(payments, result)
        assert len(p.bank.ledger) == debits
        assert record.outcome == ("paid" if debits else "hung_up")
        assert p.bank.calls[0].outcome == ("paid" if debits else None)
        bank_gone = [
            e.time
            for e in p.site.rig.exchange.events
            if e.line == p.site.rig.lines[1].number and e.event == "on-hook" and e.time >= hung_up
        ]
        assert bank_gone, "the outbound line never went on hook"
        assert bank_gone[0] - hung_up < cut_within  # emulated line seconds


# -- secrets ------------------------------------------------------------------------------

SECRET_PIN = "47195826"  # eight digits: no timestamp or path holds it by chance


async def test_the_pin_is_nowhere_and_the_card_only_masked(tmp_path, ears):
    """Two payments end to end at trace level (a new card remembered, then the
    remembered card used): the PIN appears in no log line, database byte or
    control-socket reply; the card only masked (or as ciphertext)."""
    lines: list[str] = []
    sink = logger.add(lines.append, level=0, format="{level} {name}:{function} {message} {extra}")
    replies: list[str] = []
    try:
        async with paying(tmp_path, ears, "usr-5637") as p:
            p.bank.add_account(OTHER_CARD, 10_000_000, SECRET_PIN)
            await p.to_the_bank()
            await p.new_card(OTHER_CARD, SECRET_PIN)
            await p.caller.answer("offer_remember_card", "1")
            await p.ends()
            p.site.store.remember_bill(CALLER, OTHER_BILL)
            await p.caller.wait(1.0)
            await p.to_the_bank()
            await p.caller.answer("remembered_card_confirm", "1")
            await p.caller.answer("bank_ask_pin", SECRET_PIN + "#", timeout=120.0)
            assert await p.caller.until_line_hangs_up()
            await p.site.wait_idle(calls=2, timeout=300.0)
            assert len(p.bank.ledger) == 2
            socket = p.site.config.control.socket
            for command in ("calls", "status", "stats"):
                replies.append(repr(await arequest(socket, command)))
            replies.append(repr(p.site.store.recent_payments()))
            assert p.site.settle()
            stored = b"".join(
                path.read_bytes()
                for path in tmp_path.iterdir()
                if path.name.startswith("calls.db") and path.is_file()
            )
    finally:
        logger.remove(sink)
    everything = "\n".join([*lines, *replies])
    assert any("relaying the caller" in line for line in lines)
    assert SECRET_PIN not in everything and SECRET_PIN.encode() not in stored
    assert OTHER_CARD not in everything and OTHER_CARD.encode() not in stored
    assert OTHER_CARD[6:12] not in everything  # the hidden middle digits, anywhere
    assert mask_card(OTHER_CARD) in everything
