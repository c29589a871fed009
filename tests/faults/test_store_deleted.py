"""The database deleted (or replaced) under the running daemon.

Before, the daemon went on writing into the unlinked file, said nothing, and
the records vanished at the next start. Now it notices the file's identity
change: a deleted file (or directory) is reported in ``status`` and in one
log line, the calls are still answered from the file it has open, and their
records wait and are saved beside where the database was for the next start;
a replaced file is reopened and written to.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from loguru import logger

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.spool import spool_path
from daemon1521.billing.store import Store
from daemon1521.daemon.control import arequest
from daemon1521.testbed.caller import Caller
from daemon1521.testbed.ears import Ears
from daemon1521.testbed.site import DemoBill, EmulatedSite

BILL = make_bill_id(12345678, 101)
DEBT = 1_234_000
BILLS = [DemoBill(BILL, make_payment_id(BILL, DEBT, 4, 12), DEBT)]
CALLER = "02188776655"


@pytest.fixture(scope="module")
def ears() -> Ears:
    library = PromptLibrary(PromptCatalog("fa"))
    library.preload(["u8", "ulaw"])
    return Ears(library)


@pytest.fixture
def warnings():
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}", level="WARNING")
    yield lines
    logger.remove(sink)


async def ask_and_decline(caller: Caller) -> None:
    """Type the bill, confirm, do not remember it, hear the debt, decline to pay.

    Each answer waits until its question was heard in full; the debt comes
    between the last two (the record says which amount was announced).
    """
    await caller.dial()
    await caller.answer("ask_bill_id", BILL + "#")
    await caller.answer("bill_entered_confirm", "1")
    await caller.answer("offer_remember_bill", "2")
    await caller.answer("offer_payment", "2")
    assert await caller.until_line_hangs_up()


async def store_status(site: EmulatedSite, until: str, timeout: float = 10.0) -> dict:
    """``status``'s store part, once its problem mentions ``until``."""
    for _ in range(int(timeout / 0.1)):
        store = (await arequest(site.config.control.socket, "status"))["store"]
        if until in (store["problem"] or ""):
            return store
        await asyncio.sleep(0.1)
    raise AssertionError(f"status never said {until!r}: {store}")


async def test_a_deleted_database_directory_is_reported_and_its_records_kept(
    tmp_path: Path, ears: Ears, warnings: list[str]
) -> None:
    db = tmp_path / "state" / "daemon1521.db"
    db.parent.mkdir()
    async with EmulatedSite(db, ears=ears, bills=BILLS) as site:
        shutil.rmtree(db.parent)
        store = await store_status(site, "gone")
        assert str(db) in store["problem"]
        await ask_and_decline(site.caller(CALLER))  # the debt, from the file still open
        await site.wait_idle(calls=1)
        store = await store_status(site, "gone")
        assert store["queued"] > 0
    assert sum("is gone" in line for line in warnings) == 1
    assert not any("Traceback" in line for line in warnings)
    assert spool_path(db).exists() and os.stat(db.parent).st_mode & 0o077 == 0
    async with await AsyncStore.open(db) as reopened:
        (record,) = await reopened.recent_calls()
        assert (record.caller_number, record.bill_id, record.amount_announced) == (
            CALLER,
            BILL,
            DEBT,
        )
        assert (record.outcome, record.last_state) == ("not_paid", "goodbye")
    assert not spool_path(db).exists()


async def test_a_replaced_database_file_is_reopened_and_written(
    tmp_path: Path, ears: Ears, warnings: list[str]
) -> None:
    db = tmp_path / "daemon1521.db"
    async with EmulatedSite(db, ears=ears, bills=BILLS) as site:
        restored = tmp_path / "restored.db"
        with Store.open(restored) as copy:
            copy.upsert_bills(
                [{"bill_id": BILL, "payment_id": BILLS[0].payment_id, "amount_rials": DEBT}]
            )
        os.replace(restored, db)
        for _ in range(100):
            if any("was replaced" in line for line in warnings):
                break
            await asyncio.sleep(0.1)
        await ask_and_decline(site.caller(CALLER))
        await site.wait_idle(calls=1)
        assert site.daemon is not None and site.daemon.store is not None
        assert await site.daemon.store.flush(10)
    assert sum("was replaced" in line for line in warnings) == 1
    with Store.open(db) as check:
        (record,) = check.recent_calls()
        assert (record.outcome, record.amount_announced) == ("not_paid", DEBT)
