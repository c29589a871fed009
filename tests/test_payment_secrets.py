"""The secrets test: a full payment with a known card and PIN, then a search for them.

The bank leg runs for real against the scripted bank and caller of
test_telebank_relay.py, inside the real 1521 flow, with the real store and
card vault, logging at trace level. Afterwards the PIN must be nowhere: not
in the database file or its WAL, not in any log line, not in any result or
record; the card only as ciphertext or masked (first 6, last 4).
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from loguru import logger

from daemon1521.billing.cardbook import CardBook
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.store import Store
from daemon1521.billing.vault import KEY_FILE
from daemon1521.cli import main
from daemon1521.ivr.flow1521 import Flow1521
from daemon1521.ivr.settings import IvrSettings
from daemon1521.telebank.leg import BankLeg
from tests.test_dialog import FakeLine, NamePrompts
from tests.test_telebank_relay import CARD, PIN, PROFILE, SCALE, FakeBank, FakeCaller

CALLER = "02188776655"
BILL = make_bill_id(12345678, 101)
DEBT = 1_234_000
PAYMENT = make_payment_id(BILL, DEBT, 4, 12)


class ScriptedDesk:
    """The real bank leg, on the scripted bank and caller lines."""

    def __init__(self, cards: CardBook, answers: list[str]) -> None:
        self.cards = cards
        self.answers = answers

    async def pay(self, line, bill_id, payment_id, card=None, name="leg"):
        import contextlib

        bank = FakeBank()
        caller = FakeCaller(bank, list(self.answers))
        if card:
            caller.answered += 2

        @contextlib.asynccontextmanager
        async def lease():
            yield bank

        leg = BankLeg(caller, lease, PROFILE, NamePrompts(), name=name, time_scale=SCALE)
        return await leg.run(bill_id, payment_id, card)


def everything_stored(db: Path) -> bytes:
    data = b""
    for path in db.parent.iterdir():
        if path.name.startswith(db.name):
            data += path.read_bytes()
    return data


async def test_pin_nowhere_card_only_sealed_or_masked(tmp_path: Path):
    lines: list[str] = []
    sink = logger.add(lines.append, level=0, format="{level} {name}:{function} {message} {extra}")
    db = tmp_path / "daemon1521.db"
    try:
        with Store.open(db) as store:
            store.upsert_bills([{"bill_id": BILL, "payment_id": PAYMENT, "amount_rials": DEBT}])
            store.remember_bill(CALLER, BILL)
            cards = CardBook.open(store, tmp_path / KEY_FILE)
            texts: list[str] = []
            # a new card, remembered; then the remembered card used
            for answers, script in (
                ([CARD, "1", PIN + "#"], {"offer_remember_card": ["1"]}),
                ([PIN + "#"], {"remembered_card_confirm": ["1"]}),
            ):
                line = FakeLine(
                    answers={"remembered_bill_confirm": ["1"], "offer_payment": ["1"], **script}
                )
                call_id = store.open_call("line1", CALLER)
                flow = Flow1521.on_line(
                    line,
                    NamePrompts(),
                    store,
                    IvrSettings(),
                    call_id=call_id,
                    caller=CALLER,
                    payments=ScriptedDesk(cards, answers),
                )
                result = await flow.run()
                assert result.outcome == "paid", result
                texts += [repr(result), repr(flow.__dict__), repr(store.get_call(call_id))]
            texts += [repr(p) for p in store.recent_payments()]
            texts += [repr(c) for c in store.recent_calls()]
            payments = store.recent_payments()
            assert len(payments) == 2 and {p.card_masked for p in payments} == {
                CARD[:6] + "******" + CARD[-4:]
            }
    finally:
        logger.remove(sink)
    # (the CLI sets up its own logging, so it runs after the capture)
    texts.append(CliRunner().invoke(main, ["cards", "list", "--store", str(db)]).output)
    stored = everything_stored(db)
    assert lines, "nothing was logged at trace level"
    everything = "\n".join([*lines, *texts])
    assert PIN not in everything and PIN.encode() not in stored
    assert CARD not in everything and CARD.encode() not in stored
    assert CARD[6:12] not in everything  # the hidden middle digits, anywhere
    assert (CARD[:6] + "******" + CARD[-4:]) in everything  # shown masked
