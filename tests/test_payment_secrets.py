"""The secrets test: a full payment with a known card and PIN, then a search for them.

The bank leg runs for real against the scripted bank and caller of
test_telebank_relay.py, inside the real 1521 flow, with the daemon's store
(AsyncStore) and card vault, logging at trace level. Another connection
holds the write lock through both calls, so their records wait in the spool
before they reach the database. The PIN must be nowhere: not in the
database file, its WAL or the spool (daemon1521.db.spool), not in any log
line, not in any result or record; the card only as ciphertext or masked
(first 6, last 4).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from click.testing import CliRunner
from loguru import logger

from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.cardbook import CardBook
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.spool import spool_path
from daemon1521.billing.store import Store
from daemon1521.billing.vault import KEY_FILE
from daemon1521.cli import main
from daemon1521.clock import LoopClock
from daemon1521.ivr.flow1521 import Flow1521
from daemon1521.ivr.settings import IvrSettings
from daemon1521.telebank.leg import BankLeg
from tests.fakes import PROFILE, SCALE, FakeBank, FakeCaller, FakeLine, NamePrompts
from tests.test_telebank_relay import CARD, PIN

CALLER = "02188776655"
BILL = make_bill_id(12345678, 101)
DEBT = 1_234_000
PAYMENT = make_payment_id(BILL, DEBT, 4, 12)
FAST = {"write_wait": 0.05, "retry_interval": 0.05, "check_interval": 0.05}


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

        leg = BankLeg(caller, lease, PROFILE, NamePrompts(), name=name, clock=LoopClock(SCALE))
        return await leg.run(bill_id, payment_id, card)


async def spooled_all(live: AsyncStore, timeout: float = 10.0) -> bool:
    """Wait until every queued record is in the spool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = live.health()
        if health.queued and health.spooled == health.queued:
            return True
        await asyncio.sleep(0.02)
    return False


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
        texts: list[str] = []
        stored = b""
        call_ids: list[int] = []
        async with await AsyncStore.open(db, **FAST) as live:
            cards = await CardBook.open(live, tmp_path / KEY_FILE)
            lock = sqlite3.connect(db, timeout=10, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")  # another process writing: records are spooled
            # a new card, remembered; then the remembered card used
            for answers, script in (
                ([CARD, "1", PIN + "#"], {"offer_remember_card": ["1"]}),
                ([PIN + "#"], {"remembered_card_confirm": ["1"]}),
            ):
                line = FakeLine(
                    answers={"remembered_bill_confirm": ["1"], "offer_payment": ["1"], **script}
                )
                call_id = live.open_call("line1", CALLER)
                call_ids.append(call_id)
                flow = Flow1521.on_line(
                    line,
                    NamePrompts(),
                    live,
                    IvrSettings(),
                    call_id=call_id,
                    caller=CALLER,
                    payments=ScriptedDesk(cards, answers),
                )
                result = await flow.run()
                assert result.outcome == "paid", result
                texts += [repr(result), repr(flow.__dict__)]
            assert await spooled_all(live)
            spool = spool_path(db).read_bytes()
            assert b"record_payment" in spool and b"remember_card" in spool
            stored += everything_stored(db)  # the spool, and the database while it is open
            lock.execute("COMMIT")
            lock.close()
            assert await live.flush(10)
            assert not spool_path(db).exists()
            stored += everything_stored(db)  # the WAL holding the records just written
            texts += [repr(await live.get_call(i)) for i in call_ids]
            texts += [repr(p) for p in await live.recent_payments()]
            texts += [repr(c) for c in await live.recent_calls()]
            texts += [repr(live.health())]
            payments = await live.recent_payments()
            assert len(payments) == 2 and {p.card_masked for p in payments} == {
                CARD[:6] + "******" + CARD[-4:]
            }
    finally:
        logger.remove(sink)
    # (the CLI sets up its own logging, so it runs after the capture)
    texts.append(CliRunner().invoke(main, ["cards", "list", "--store", str(db)]).output)
    stored += everything_stored(db)
    assert lines, "nothing was logged at trace level"
    everything = "\n".join([*lines, *texts])
    assert PIN not in everything and PIN.encode() not in stored
    assert CARD not in everything and CARD.encode() not in stored
    assert CARD[6:12] not in everything  # the hidden middle digits, anywhere
    assert (CARD[:6] + "******" + CARD[-4:]) in everything  # shown masked
