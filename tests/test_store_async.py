"""The store as the event loop uses it: reads off the loop, writes queued, nothing lost."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loguru import logger

from daemon1521.billing.async_store import PAGE_CACHE_KIB, AsyncStore
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.spool import spool_path
from daemon1521.billing.store import Store

BILL = make_bill_id(12345678, 101)
CALLER = "02188776655"
MASKED = "622106******1234"
FAST = {"write_wait": 0.05, "retry_interval": 0.05, "check_interval": 0.05}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "daemon1521.db"
    path.parent.mkdir()
    with Store.open(path) as store:
        store.upsert_bills(
            [
                {
                    "bill_id": BILL,
                    "payment_id": make_payment_id(BILL, 90_000, 4, 12),
                    "amount_rials": 90_000,
                }
            ]
        )
    return path


class Locker:
    """Another process's connection holding the database's write lock."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()


def a_call(store: AsyncStore, line: str = "line1") -> int:
    call_id = store.open_call(line, CALLER)
    for state in ("welcome", "ask_bill", "lookup"):
        store.add_state(call_id, state)
    store.update_call(call_id, bill_id=BILL, amount_announced=90_000)
    store.remember_bill(CALLER, BILL)
    store.close_call(call_id, "not_paid", "caller chose not to pay")
    return call_id


async def test_the_daemons_connections_keep_a_small_page_cache(db_path: Path) -> None:
    # SQLite's default cache would grow the daemon's memory with its records for hours
    async with await AsyncStore.open(db_path) as store:
        size = await store._read(lambda s: s.db.execute("PRAGMA cache_size").fetchone()[0])
        assert size == -PAGE_CACHE_KIB
        assert PAGE_CACHE_KIB < 2000


async def test_writes_are_queued_and_written(db_path: Path) -> None:
    async with await AsyncStore.open(db_path, **FAST) as store:
        first = a_call(store)
        second = a_call(store, "line2")
        assert second == first + 1
        assert await store.flush(5)
        record = await store.get_call(first)
        assert record is not None
        assert record.states == ("welcome", "ask_bill", "lookup")
        assert (record.outcome, record.bill_id, record.amount_announced) == (
            "not_paid",
            BILL,
            90_000,
        )
        assert await store.remembered_bill(CALLER) == BILL
        assert store.health().problem is None
    # ids go on from the database at the next start
    async with await AsyncStore.open(db_path, **FAST) as store:
        assert store.open_call("line1", None) == second + 1


async def test_a_locked_database_delays_writes_not_reads(db_path: Path) -> None:
    async with await AsyncStore.open(db_path, **FAST) as store:
        locker = Locker(db_path)
        try:
            call_id = a_call(store)  # returns: the caller of a write never waits for it
            bill = await store.get_bill(BILL)  # WAL: a read needs no lock
            assert bill is not None and bill.amount_rials == 90_000
            assert not await store.flush(0.5)
            health = store.health()
            assert health.problem is not None and "locked" in health.problem
            assert health.queued >= 7 and health.spooled
            assert spool_path(db_path).exists()
            counts = await store.count_calls(datetime.now(UTC) - timedelta(hours=1))
            assert counts.total == 1 and counts.lines == {"line1": 1}
        finally:
            locker.release()
        assert await store.flush(5)
        assert store.health().problem is None and store.health().queued == 0
        assert not spool_path(db_path).exists()
        record = await store.get_call(call_id)
        assert record is not None and record.outcome == "not_paid"


async def test_what_waited_at_shutdown_is_written_at_the_next_start(db_path: Path) -> None:
    store = await AsyncStore.open(db_path, **FAST)
    locker = Locker(db_path)
    try:
        call_id = a_call(store)
        payment = store.record_payment(
            call_id=call_id,
            bill_id=BILL,
            payment_id=make_payment_id(BILL, 90_000, 4, 12),
            amount=90_000,
            card_masked=MASKED,
            result="success",
        )
        await store.close()
    finally:
        locker.release()
    spooled = spool_path(db_path).read_text()
    assert MASKED in spooled and "6221061234561234" not in spooled
    assert os.stat(spool_path(db_path)).st_mode & 0o077 == 0
    async with await AsyncStore.open(db_path, **FAST) as store:
        assert not spool_path(db_path).exists()
        record = await store.get_call(call_id)
        assert record is not None and record.states == ("welcome", "ask_bill", "lookup")
        assert record.outcome == "not_paid"
        (paid,) = await store.recent_payments()
        assert (paid.id, paid.call_id, paid.card_masked) == (payment, call_id, MASKED)


async def test_replaying_a_spool_twice_changes_nothing(db_path: Path) -> None:
    store = await AsyncStore.open(db_path, **FAST)
    locker = Locker(db_path)
    try:
        call_id = a_call(store)
        await store.close()
    finally:
        locker.release()
    copy = spool_path(db_path).read_bytes()
    async with await AsyncStore.open(db_path, **FAST):
        pass
    spool_path(db_path).write_bytes(copy)  # as if killed before the spool was removed
    async with await AsyncStore.open(db_path, **FAST) as store:
        record = await store.get_call(call_id)
        assert record is not None and record.states == ("welcome", "ask_bill", "lookup")
        assert len(await store.recent_calls()) == 1


async def test_records_left_open_by_a_killed_run_are_closed_at_start(db_path: Path) -> None:
    with Store.open(db_path) as old_run:
        call_id = old_run.open_call("line1", CALLER)
        old_run.add_state(call_id, "welcome")
    async with await AsyncStore.open(db_path, **FAST) as store:
        record = await store.get_call(call_id)
        assert record is not None
        assert record.outcome == "interrupted" and record.ended_at is not None
        assert record.last_state == "welcome"


async def test_a_replaced_database_file_is_reopened(db_path: Path, tmp_path: Path) -> None:
    async with await AsyncStore.open(db_path, **FAST) as store:
        first = a_call(store)
        assert await store.flush(5)
        backup = tmp_path / "restored.db"
        shutil.copy(db_path, backup)
        os.replace(backup, db_path)
        second = a_call(store)
        assert await store.flush(5)
        assert (await store.get_call(second)) is not None
        assert (await store.get_call(first)) is not None
    with Store.open(db_path) as check:
        assert {r.id for r in check.recent_calls()} == {first, second}


async def test_a_deleted_directory_keeps_records_queued_and_saved(db_path: Path) -> None:
    store = await AsyncStore.open(db_path, **FAST)
    try:
        shutil.rmtree(db_path.parent)
        call_id = a_call(store)
        assert not await store.flush(0.5)
        problem = store.health().problem
        assert problem is not None and "gone" in problem and str(db_path) in problem
        bill = await store.get_bill(BILL)  # still read from the open file
        assert bill is not None
    finally:
        await store.close()
    assert spool_path(db_path).exists()  # the directory was made again for it
    async with await AsyncStore.open(db_path, **FAST) as store:
        record = await store.get_call(call_id)
        assert record is not None and record.outcome == "not_paid"


async def test_writes_refuse_clear_cards_and_bad_fields(db_path: Path) -> None:
    async with await AsyncStore.open(db_path, **FAST) as store:
        call_id = store.open_call("line1", CALLER)
        with pytest.raises(ValueError, match="masked"):
            store.record_payment(
                call_id=call_id,
                bill_id=BILL,
                payment_id=None,
                amount=1000,
                card_masked="6221061234561234",
                result="success",
            )
        with pytest.raises(ValueError, match="unknown call field"):
            store.update_call(call_id, pin="1234")
        with pytest.raises(ValueError, match="clear"):
            store.remember_card(CALLER, b"6221061234561234", MASKED)


async def test_a_full_disk_queues_writes_and_says_so_once(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daemon1521.billing import journal

    real_apply = journal.apply
    full = True
    messages: list[str] = []

    def apply(db, entry):  # type: ignore[no-untyped-def]
        if full:
            raise sqlite3.OperationalError("database or disk is full")
        real_apply(db, entry)

    monkeypatch.setattr(journal, "apply", apply)
    sink = logger.add(messages.append, format="{message}", level="WARNING")
    try:
        async with await AsyncStore.open(db_path, **FAST) as store:
            call_id = a_call(store)
            assert not await store.flush(0.5)  # several attempts by now
            problem = store.health().problem
            assert problem is not None and "disk is full" in problem
            assert (await store.get_bill(BILL)) is not None
            full = False
            assert await store.flush(5)
            record = await store.get_call(call_id)
            assert record is not None and record.outcome == "not_paid"
            assert store.health().problem is None
    finally:
        logger.remove(sink)
    assert sum("disk is full" in m for m in messages) == 1


async def test_a_writer_bug_is_reported_and_the_writes_go_on(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daemon1521.billing import journal

    real_apply = journal.apply
    failures = [RuntimeError("a bug")]

    def apply(db, entry):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        real_apply(db, entry)

    monkeypatch.setattr(journal, "apply", apply)
    messages: list[str] = []
    sink = logger.add(messages.append, format="{message}", level="WARNING")
    try:
        async with await AsyncStore.open(db_path, **FAST) as store:
            call_id = a_call(store)
            assert await store.flush(5)
            record = await store.get_call(call_id)
            assert record is not None and record.outcome == "not_paid"
            assert store.health().problem is None
    finally:
        logger.remove(sink)
    assert sum("the writer failed: RuntimeError: a bug" in m for m in messages) == 1


async def test_a_damaged_spool_loses_only_its_bad_lines(db_path: Path) -> None:
    import msgspec

    from daemon1521.billing import journal

    good = journal.OpenCall(50, "line1", CALLER, "2026-01-01T10:00:00.000000+00:00")
    bad = journal.UpdateCall(50, {"pin": "1234"})
    closed = journal.CloseCall(50, "no_debt", None, "2026-01-01T10:01:00.000000+00:00")
    lines = [msgspec.json.encode(e) for e in (good, bad)] + [b'{"type": "open_call", "cal']
    lines.insert(2, msgspec.json.encode(closed))
    spool_path(db_path).write_bytes(b"\n".join(lines) + b"\n")
    messages: list[str] = []
    sink = logger.add(messages.append, format="{message}", level="WARNING")
    try:
        async with await AsyncStore.open(db_path, **FAST) as store:
            record = await store.get_call(50)
            assert record is not None and record.outcome == "no_debt"
            assert store.open_call("line1", None) == 51
    finally:
        logger.remove(sink)
    assert not spool_path(db_path).exists()
    assert sum("line 4 skipped" in m for m in messages) == 1
    assert sum("UpdateCall (call 50) dropped" in m for m in messages) == 1


# -- payments and remembered cards ------------------------------------------------------

SEALED = b"\x01sealed-by-the-vault\x02"


async def test_a_forgotten_card_is_gone_at_once_and_after_a_restart(db_path: Path) -> None:
    with Store.open(db_path) as plain:
        plain.remember_card(CALLER, SEALED, MASKED)
    store = await AsyncStore.open(db_path, **FAST)
    locker = Locker(db_path)
    try:
        assert (await store.remembered_card(CALLER)) is not None
        store.forget_card(CALLER)
        assert await store.remembered_card(CALLER) is None  # not offered again meanwhile
        await store.close()
    finally:
        locker.release()
    assert '"forget_card"' in spool_path(db_path).read_text()
    async with await AsyncStore.open(db_path, **FAST) as store:
        assert not spool_path(db_path).exists()
        assert await store.remembered_card(CALLER) is None
        assert await store.remembered_card_list() == []


def test_a_replayed_forget_keeps_a_card_remembered_after_it(db_path: Path) -> None:
    from daemon1521.billing import journal

    forget = journal.ForgetCard(CALLER, "2026-01-01T10:00:00.000000+00:00")
    with Store.open(db_path, now=lambda: datetime(2026, 1, 1, 11, tzinfo=UTC)) as plain:
        plain.remember_card(CALLER, SEALED, MASKED)  # after the caller asked to forget
        with plain.transaction() as db:
            journal.apply(db, forget)
            journal.apply(db, forget)
        assert plain.remembered_card(CALLER) is not None
        later = journal.ForgetCard(CALLER, "2026-01-01T12:00:00.000000+00:00")
        with plain.transaction() as db:
            journal.apply(db, later)
            journal.apply(db, later)
        assert plain.remembered_card(CALLER) is None


async def test_a_card_remembered_while_writes_wait_is_offered(db_path: Path) -> None:
    store = await AsyncStore.open(db_path, **FAST)
    locker = Locker(db_path)
    try:
        store.remember_card(CALLER, SEALED, MASKED)
        card = await store.remembered_card(CALLER)
        assert card is not None and (card.ciphertext, card.masked) == (SEALED, MASKED)
        assert await store.remembered_card("P") is None
    finally:
        locker.release()
        await store.close()
    with Store.open(db_path) as plain:
        [(caller, stored)] = plain.remembered_card_list()
    assert (caller, stored.masked) == (CALLER, MASKED)


async def test_payments_of_calls_and_today_counted(db_path: Path) -> None:
    async with await AsyncStore.open(db_path, **FAST) as store:
        call_id = a_call(store)
        other = a_call(store, "line2")
        for result in ("declined_pin", "paid"):
            store.record_payment(
                call_id=call_id,
                bill_id=BILL,
                payment_id=make_payment_id(BILL, 90_000, 4, 12),
                amount=90_000,
                card_masked=MASKED,
                result=result,
            )
        assert await store.flush(5)
        found = await store.payments_of_calls([call_id, other])
        assert list(found) == [call_id]
        assert [p.result for p in found[call_id]] == ["declined_pin", "paid"]
        since = datetime.now(UTC) - timedelta(hours=1)
        assert await store.count_payments(since) == {"declined_pin": 1, "paid": 1}
        assert await store.count_payments(datetime.now(UTC) + timedelta(hours=1)) == {}
        assert await store.payments_of_calls([]) == {}
