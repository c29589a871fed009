"""The payment state of the 1521 flow: the bank leg's outcomes, records and remembered cards.

The bank leg itself is replaced by a fake desk that returns a given result
(test_payment_e2e.py runs the real one through the daemon on the emulator); the card book is
real, with its vault, so what is stored is what the daemon would store. The
flow and the book use the daemon's AsyncStore (``live``); ``store`` is a plain
connection to the same file for seeding and checking.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon1521.audio.say_fa import say_digits
from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.cardbook import CardBook
from daemon1521.billing.cards import CARD_GROUPS, luhn_ok, mask_card
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.store import Store
from daemon1521.billing.vault import KEY_FILE
from daemon1521.ivr.flow1521 import Flow1521, FlowResult
from daemon1521.ivr.settings import IvrSettings
from daemon1521.telebank.leg import LegResult, PaymentOutcome
from tests.fakes import FakeLine, NamePrompts

CALLER = "02188776655"
BILL = make_bill_id(12345678, 101)
DEBT = 1_234_000
PAYMENT = make_payment_id(BILL, DEBT, 4, 12)


def with_luhn(prefix15: str) -> str:
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


CARD = with_luhn("622106123456789")
OLD_CARD = with_luhn("502229987654321")


@dataclass
class FakeDesk:
    """Stands in for the bank leg: returns ``result``, notes what it was asked."""

    cards: CardBook | None
    outcome: PaymentOutcome = PaymentOutcome.PAID
    learned: str | None = CARD
    tracking: str | None = "100201"
    asked: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def pay(self, line, bill_id, payment_id, card=None, name="leg") -> LegResult:
        self.asked.append((bill_id, payment_id, card))
        now = datetime.now(UTC)
        used = card or self.learned
        return LegResult(
            self.outcome,
            now,
            now,
            code="0",
            tracking=self.tracking if self.outcome is PaymentOutcome.PAID else None,
            card_masked=mask_card(used) if used else None,
            learned=None if card else self.learned,
            caller_gone=self.outcome is PaymentOutcome.CALLER_HUNG_UP,
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "calls.db") as db:
        db.upsert_bills([{"bill_id": BILL, "payment_id": PAYMENT, "amount_rials": DEBT}])
        db.remember_bill(CALLER, BILL)
        yield db


@pytest.fixture
async def live(store: Store, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await AsyncStore.open(tmp_path / "calls.db") as opened:
        yield opened


@pytest.fixture
async def cards(live: AsyncStore, tmp_path: Path) -> CardBook:
    return await CardBook.open(live, tmp_path / KEY_FILE)


async def run(live: AsyncStore, desk: FakeDesk, answers: dict) -> tuple[FlowResult, FakeLine]:
    """One call through the flow, its records written before returning."""
    line = FakeLine(answers={"remembered_bill_confirm": ["1"], "offer_payment": ["1"], **answers})
    call_id = live.open_call("line1", CALLER)
    flow = Flow1521.on_line(
        line, NamePrompts(), live, IvrSettings(), call_id=call_id, caller=CALLER, payments=desk
    )
    result = await flow.run()
    assert await live.flush(10)
    return result, line


async def test_a_new_card_pays_and_is_remembered(store: Store, live: AsyncStore, cards: CardBook):
    desk = FakeDesk(cards)
    result, line = await run(live, desk, {"offer_remember_card": ["1"]})
    heard = line.heard()
    assert (
        heard[-6:]
        == [
            "payment_success",
            "tracking_number_is",
            *say_digits("100201", (6,)),
            "offer_remember_card",
            "card_saved",
            "goodbye",
        ][-6:]
    )
    assert result.outcome == "paid"
    assert desk.asked == [(BILL, PAYMENT, None)]
    [payment] = store.recent_payments()
    assert payment.result == "paid" and payment.tracking == "100201"
    assert payment.card_masked == mask_card(CARD) and payment.amount == DEBT
    known = await cards.card_for(CALLER)
    assert known is not None and known.number == CARD


async def test_the_remembered_card_is_read_back_and_keyed_for_the_caller(
    store: Store, live: AsyncStore, cards: CardBook
):
    cards.remember(CALLER, OLD_CARD)
    desk = FakeDesk(cards)
    result, line = await run(live, desk, {"remembered_card_confirm": ["1"]})
    heard = line.heard()
    i = heard.index("remembered_card_is")
    assert heard[i + 1 : i + 1 + len(say_digits(OLD_CARD, CARD_GROUPS))] == say_digits(
        OLD_CARD, CARD_GROUPS
    )
    assert "remembered_card_drop" in heard
    assert desk.asked == [(BILL, PAYMENT, OLD_CARD)]
    assert "offer_remember_card" not in heard  # it is already remembered
    assert result.outcome == "paid"


async def test_another_key_types_a_new_card_which_may_replace_the_old(
    store: Store, live: AsyncStore, cards: CardBook
):
    cards.remember(CALLER, OLD_CARD)
    desk = FakeDesk(cards)
    await run(live, desk, {"remembered_card_confirm": ["2"], "offer_remember_card": ["1"]})
    assert desk.asked == [(BILL, PAYMENT, None)]
    known = await cards.card_for(CALLER)
    assert known is not None and known.number == CARD


async def test_the_caller_drops_the_remembered_card(
    store: Store, live: AsyncStore, cards: CardBook
):
    cards.remember(CALLER, OLD_CARD)
    desk = FakeDesk(cards, learned=None)
    _, line = await run(live, desk, {"remembered_card_confirm": ["9"]})
    assert "card_forgotten" in line.heard()
    assert store.remembered_card(CALLER) is None
    assert desk.asked == [(BILL, PAYMENT, None)]


@pytest.mark.parametrize(
    ("outcome", "prompt", "call_outcome"),
    [
        (PaymentOutcome.DECLINED_PIN, "wrong_pin", "declined"),
        (PaymentOutcome.INSUFFICIENT_FUNDS, "insufficient_funds", "declined"),
        (PaymentOutcome.CARD_REFUSED, "card_refused", "declined"),
        (PaymentOutcome.RESULT_UNKNOWN, "payment_unknown", "payment_unknown"),
        (PaymentOutcome.BANK_UNREACHABLE, None, "bank_unreachable"),
        (PaymentOutcome.BANK_BUSY, None, "bank_busy"),
    ],
)
async def test_outcomes_are_told_and_recorded(
    store: Store, live: AsyncStore, cards: CardBook, outcome, prompt, call_outcome
):
    desk = FakeDesk(cards, outcome=outcome)
    result, line = await run(live, desk, {"offer_remember_card": ["1"]})
    heard = line.heard()
    if prompt:
        assert prompt in heard
    assert heard[-1] == "goodbye"
    assert result.outcome == call_outcome
    [payment] = store.recent_payments()
    assert payment.result == str(outcome)
    # a card refused, or a bank never reached, is not offered for remembering
    refused = outcome in (
        PaymentOutcome.CARD_REFUSED,
        PaymentOutcome.BANK_UNREACHABLE,
        PaymentOutcome.BANK_BUSY,
    )
    assert ("offer_remember_card" in heard) is not refused


async def test_caller_hanging_up_in_the_bank_leg(store: Store, live: AsyncStore, cards: CardBook):
    desk = FakeDesk(cards, outcome=PaymentOutcome.CALLER_HUNG_UP)
    result, _ = await run(live, desk, {})
    assert result.outcome == "hung_up" and result.last_state == "payment"
    [payment] = store.recent_payments()
    assert payment.result == "caller_hung_up"
    assert store.remembered_card(CALLER) is None


async def test_without_a_vault_nothing_is_offered_or_remembered(store: Store, live: AsyncStore):
    desk = FakeDesk(None)
    _, line = await run(live, desk, {"offer_remember_card": ["1"]})
    assert "offer_remember_card" not in line.heard()
    assert store.remembered_card(CALLER) is None


async def test_no_caller_id_no_remembering(store: Store, live: AsyncStore, cards: CardBook):
    desk = FakeDesk(cards)
    line = FakeLine(answers={"offer_payment": ["1"], "offer_remember_card": ["1"]}, keys=[])
    line.script = []
    call_id = live.open_call("line1", None)
    flow = Flow1521.on_line(
        line, NamePrompts(), live, IvrSettings(), call_id=call_id, caller=None, payments=desk
    )
    flow.remembered = None
    # no caller ID: the bill must be typed; skip to the payment state directly
    flow.bill_id = BILL
    flow.bill = await live.get_bill(BILL)
    state = await flow.payment()
    assert str(state) == "goodbye"
    assert await live.flush(10)
    assert store.remembered_card(CALLER) is None


async def test_payments_shown_with_their_call_masked(
    store: Store, live: AsyncStore, cards: CardBook
):
    from daemon1521.daemon.privacy import payment_record

    await run(live, FakeDesk(cards), {"offer_remember_card": ["2"]})
    [call] = store.recent_calls()
    [attempt] = (await live.payments_of_calls([call.id]))[call.id]
    assert store.payments_of_calls([call.id]) == {call.id: [attempt]}
    shown = payment_record(attempt)
    assert shown["card"] == mask_card(CARD) and shown["result"] == "paid"
    assert shown["tracking"] == "100201" and BILL not in repr(shown)
    assert CARD not in repr(shown)
    assert await live.payments_of_calls([]) == {}
