"""The store: schema and migrations, bills, remembered data, call records."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.store import (
    MIGRATIONS,
    Bill,
    CallOutcome,
    Store,
    StoreUnavailable,
    UpsertCounts,
    migrate,
    schema_version,
)

BILL = make_bill_id(123, 45)  # "0000001230452": has leading zeros
PAYMENT = make_payment_id(BILL, 1_234_000, 3, 7)
CARD_MASKED = "622106******7891"


class Clock:
    """A settable clock, so timestamps are predictable."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    s = Store.open(tmp_path / "d.db", now=clock)
    yield s
    s.close()


# ---------------------------------------------------------------------- schema


def test_open_creates_schema_in_wal_mode(store: Store):
    assert store.db.journal_mode == "wal"
    assert schema_version(store.db) == len(MIGRATIONS)
    assert {"bills", "remembered_bills", "remembered_cards", "calls", "payments"} <= set(
        store.db.table_names()
    )


def test_the_page_cache_is_bounded_only_when_asked(tmp_path: Path):
    def cache_size(store: Store) -> int:
        return store.db.execute("PRAGMA cache_size").fetchone()[0]

    with Store.open(tmp_path / "a.db") as store:
        assert cache_size(store) == -2000  # SQLite's default (KiB): for imports
    with Store.open(tmp_path / "a.db", page_cache_kib=256) as store:
        assert cache_size(store) == -256


def test_reopen_keeps_data_and_does_not_migrate_again(tmp_path: Path):
    path = tmp_path / "d.db"
    with Store.open(path) as first:
        first.upsert_bills([{"bill_id": BILL, "payment_id": PAYMENT, "amount_rials": 1_234_000}])
    with Store.open(path) as second:
        assert second.get_bill(BILL) is not None
        rows = list(second.db.query("SELECT version FROM schema_version"))
        assert [r["version"] for r in rows] == list(range(1, len(MIGRATIONS) + 1))


def test_later_migration_upgrades_an_existing_database(tmp_path: Path):
    path = tmp_path / "d.db"
    with Store.open(path) as s:
        s.remember_bill("02155555555", BILL)

    def add_notes(db: sqlite_utils.Database) -> None:
        db["remembered_bills"].add_column("note", str)

    db = sqlite_utils.Database(path)
    try:
        assert migrate(db, (*MIGRATIONS, add_notes)) == len(MIGRATIONS) + 1
        assert "note" in db["remembered_bills"].columns_dict
        assert schema_version(db) == len(MIGRATIONS) + 1
        assert db.execute("SELECT bill_id FROM remembered_bills").fetchone()[0] == BILL
    finally:
        db.close()


def test_failed_migration_leaves_the_database_unchanged(tmp_path: Path):
    path = tmp_path / "d.db"
    Store.open(path).close()

    def broken(db: sqlite_utils.Database) -> None:
        db["remembered_bills"].add_column("note", str)
        raise RuntimeError("migration bug")

    db = sqlite_utils.Database(path)
    try:
        with pytest.raises(RuntimeError):
            migrate(db, (*MIGRATIONS, broken))
        assert schema_version(db) == len(MIGRATIONS)
        assert "note" not in db["remembered_bills"].columns_dict
    finally:
        db.close()


def test_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "d.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO schema_version VALUES (99, '2030-01-01T00:00:00+00:00')")
    conn.close()
    with pytest.raises(StoreUnavailable, match="schema version 99"):
        Store.open(path)


# ------------------------------------------------------------------ unavailable


def test_missing_directory_is_unavailable(tmp_path: Path):
    with pytest.raises(StoreUnavailable, match="cannot open"):
        Store.open(tmp_path / "no" / "such" / "dir" / "d.db")


def test_corrupt_file_is_unavailable(tmp_path: Path):
    path = tmp_path / "d.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable):
        Store.open(path)


def test_locked_database_is_unavailable(tmp_path: Path):
    path = tmp_path / "d.db"
    with Store.open(path, busy_timeout=0.05) as s:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable):
                s.remember_bill("02155555555", BILL)
            other.execute("ROLLBACK")
        finally:
            other.close()
        s.remember_bill("02155555555", BILL)  # fine again once released
        assert s.remembered_bill("02155555555") == BILL


def test_closed_store_is_unavailable(tmp_path: Path):
    s = Store.open(tmp_path / "d.db")
    s.close()
    with pytest.raises(StoreUnavailable):
        s.get_bill(BILL)


# ------------------------------------------------------------------------ bills


def test_bills_upsert_and_lookup_in_either_form(store: Store, clock: Clock):
    counts = store.upsert_bills(
        [{"bill_id": BILL.lstrip("0"), "payment_id": PAYMENT, "amount_rials": 1_234_000}]
    )
    assert counts == UpsertCounts(inserted=1)
    for form in (BILL, BILL.lstrip("0"), "0" + BILL.lstrip("0")):
        bill = store.get_bill(form)
        assert bill == Bill(BILL, PAYMENT, 1_234_000, clock.now)
    assert store.get_bill(make_bill_id(999, 45)) is None


def test_rerun_changes_nothing_and_updates_are_counted(store: Store, clock: Clock):
    rows = [
        {"bill_id": BILL, "payment_id": PAYMENT, "amount_rials": 1_234_000},
        Bill(make_bill_id(124, 45), None, 0, clock.now),
    ]
    assert store.upsert_bills(rows) == UpsertCounts(inserted=2)
    first_stamp = clock.now
    clock.advance(60)
    assert store.upsert_bills(rows) == UpsertCounts(unchanged=2)
    assert store.get_bill(BILL).updated_at == first_stamp  # type: ignore[union-attr]
    new_payment = make_payment_id(BILL, 2_000_000, 3, 8)
    counts = store.upsert_bills(
        [{"bill_id": BILL, "payment_id": new_payment, "amount_rials": 2_000_000}]
    )
    assert counts == UpsertCounts(updated=1) and counts.total == 1
    bill = store.get_bill(BILL)
    assert bill is not None
    assert (bill.payment_id, bill.amount_rials, bill.updated_at) == (
        new_payment,
        2_000_000,
        clock.now,
    )


def test_upsert_is_all_or_nothing(store: Store):
    def rows() -> Iterator[dict[str, object]]:
        for i in range(1200):  # more than one batch
            yield {"bill_id": make_bill_id(1000 + i, 45), "payment_id": None, "amount_rials": 0}
        raise OSError("the file went away")

    with pytest.raises(OSError):
        store.upsert_bills(rows())
    assert store.db.execute("SELECT count(*) FROM bills").fetchone()[0] == 0


def test_slow_import_does_not_hold_the_write_lock(tmp_path: Path):
    """While an importer is still producing rows, the daemon can write."""
    path = tmp_path / "d.db"
    with Store.open(path) as importer, Store.open(path, busy_timeout=0.05) as daemon:
        seen_call: list[int] = []

        def rows() -> Iterator[dict[str, object]]:
            for i in range(1200):
                if i == 1100:
                    seen_call.append(daemon.open_call("ttyACM0", "02155555555"))
                yield {"bill_id": make_bill_id(1000 + i, 45), "payment_id": None, "amount_rials": 0}

        assert importer.upsert_bills(rows()) == UpsertCounts(inserted=1200)
        assert daemon.get_call(seen_call[0]) is not None
        assert daemon.get_bill(make_bill_id(2199, 45)) is not None


def test_duplicates_in_one_upsert_count_once_last_wins(store: Store):
    rows = [
        {"bill_id": BILL, "payment_id": None, "amount_rials": 0},
        {"bill_id": BILL.lstrip("0"), "payment_id": PAYMENT, "amount_rials": 1_234_000},
    ]
    assert store.upsert_bills(rows) == UpsertCounts(inserted=1)
    assert store.get_bill(BILL).payment_id == PAYMENT  # type: ignore[union-attr]


def test_upsert_refuses_bad_amounts(store: Store):
    with pytest.raises(ValueError):
        store.upsert_bills([{"bill_id": BILL, "payment_id": None, "amount_rials": -1}])
    with pytest.raises(ValueError):
        store.upsert_bills([{"bill_id": BILL, "payment_id": None, "amount_rials": "12"}])


def test_many_bills(store: Store):
    rows = [
        {"bill_id": make_bill_id(i, 45), "payment_id": None, "amount_rials": 0}
        for i in range(1, 2001)
    ]
    assert store.upsert_bills(rows).inserted == 2000
    assert store.upsert_bills(rows).unchanged == 2000


# ----------------------------------------------------------------- remembering


def test_remember_replace_and_forget_bill(store: Store):
    caller = "02155555555"
    assert store.remembered_bill(caller) is None
    store.remember_bill(caller, BILL.lstrip("0"))
    assert store.remembered_bill(caller) == BILL
    other = make_bill_id(777, 45)
    store.remember_bill(caller, other)
    assert store.remembered_bill(caller) == other
    assert store.forget_bill(caller) is True
    assert store.forget_bill(caller) is False
    assert store.remembered_bill(caller) is None


@pytest.mark.parametrize("caller", ["", "  ", None, "P", "O"])
def test_remembering_needs_a_caller(store: Store, caller: str | None):
    with pytest.raises(ValueError):
        store.remember_bill(caller, BILL)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.remember_card(caller, b"\x01" * 40, CARD_MASKED)  # type: ignore[arg-type]
    assert store.remembered_bill(caller) is None
    assert store.remembered_card(caller) is None


def test_remember_card(store: Store, clock: Clock):
    caller = "09121234567"
    ciphertext = bytes(range(200, 256)) + b"\x00\x01"
    assert store.remembered_card(caller) is None
    store.remember_card(caller, ciphertext, CARD_MASKED)
    card = store.remembered_card(caller)
    assert card is not None
    assert (card.ciphertext, card.masked, card.updated_at) == (ciphertext, CARD_MASKED, clock.now)
    store.remember_card(caller, b"\x02" * 40, "603799******0001")
    assert store.remembered_card(caller).masked == "603799******0001"  # type: ignore[union-attr]
    assert store.forget_card(caller) is True
    assert store.remembered_card(caller) is None


@pytest.mark.parametrize(
    ("ciphertext", "masked", "error"),
    [
        (b"6221061234567891", CARD_MASKED, ValueError),
        (b"6221 0612 3456 7891", CARD_MASKED, ValueError),
        (b"", CARD_MASKED, ValueError),
        ("ciphertext", CARD_MASKED, TypeError),
        (b"\x01" * 40, "6221061234567891", ValueError),
        (b"\x01" * 40, "622106****7891", ValueError),
    ],
)
def test_card_in_clear_is_refused(
    store: Store, ciphertext: bytes, masked: str, error: type[Exception]
):
    with pytest.raises(error):
        store.remember_card("09121234567", ciphertext, masked)
    assert store.remembered_card("09121234567") is None


# ------------------------------------------------------------------------ calls


def test_call_record_life(store: Store, clock: Clock):
    call = store.open_call("ttyACM0", "02155555555")
    started = clock.now
    clock.advance(2)
    store.update_call(call, answered_at=clock.now)
    for state in ("welcome", "ask_bill", "read_back_bill", "lookup", "announce"):
        store.add_state(call, state)
    store.update_call(call, bill_id=BILL.lstrip("0"), amount_announced=1_234_000)
    clock.advance(30)
    assert store.close_call(call, CallOutcome.NOT_PAID) is True
    assert store.close_call(call, CallOutcome.ERROR, "late cleanup") is False  # first wins
    record = store.get_call(call)
    assert record is not None
    assert record.line == "ttyACM0" and record.caller_number == "02155555555"
    assert record.started_at == started
    assert record.answered_at == started + timedelta(seconds=2)
    assert record.ended_at == clock.now
    assert record.states == ("welcome", "ask_bill", "read_back_bill", "lookup", "announce")
    assert record.last_state == "announce"
    assert record.bill_id == BILL
    assert record.amount_announced == 1_234_000
    assert record.outcome == "not_paid" and record.reason is None


def test_call_without_caller_id(store: Store):
    call = store.open_call("ttyACM1", None)
    store.close_call(call, CallOutcome.HUNG_UP, "busy tone")
    record = store.get_call(call)
    assert record is not None
    assert record.caller_number is None and record.states == ()
    assert (record.outcome, record.reason) == ("hung_up", "busy tone")


def test_call_errors(store: Store):
    call = store.open_call("ttyACM0", None)
    with pytest.raises(ValueError, match="unknown call field"):
        store.update_call(call, states=["x"])
    with pytest.raises(TypeError):
        store.update_call(call, answered_at="now")
    with pytest.raises(KeyError):
        store.update_call(call + 1, outcome="paid")
    with pytest.raises(KeyError):
        store.add_state(call + 1, "welcome")
    with pytest.raises(KeyError):
        store.close_call(call + 1, CallOutcome.ERROR)
    with pytest.raises(ValueError):
        store.close_call(call, "")
    assert store.get_call(call + 1) is None
    store.update_call(call)  # nothing to set: no error


def test_recent_calls(store: Store, clock: Clock):
    ids = []
    for i in range(5):
        ids.append(store.open_call(f"line{i}", None))
        clock.advance(60)
    calls = store.recent_calls()
    assert [c.id for c in calls] == ids[::-1]
    assert [c.id for c in store.recent_calls(limit=2)] == ids[:2:-1]
    since = datetime(2025, 3, 1, 8, 2, tzinfo=UTC)
    assert [c.id for c in store.recent_calls(since=since)] == ids[:1:-1]


# --------------------------------------------------------------------- payments


def test_record_payment(store: Store, clock: Clock):
    call = store.open_call("ttyACM0", "02155555555")
    started = clock.now
    clock.advance(90)
    payment_id = store.record_payment(
        call_id=call,
        bill_id=BILL.lstrip("0"),
        payment_id=PAYMENT.zfill(13),
        amount=1_234_000,
        card_masked=CARD_MASKED,
        result="success",
        tracking="123456789",
        started_at=started,
    )
    (record,) = store.recent_payments()
    assert record.id == payment_id and record.call_id == call
    assert (record.bill_id, record.payment_id) == (BILL, PAYMENT)
    assert record.amount == 1_234_000 and record.card_masked == CARD_MASKED
    assert (record.result, record.tracking) == ("success", "123456789")
    assert (record.started_at, record.ended_at) == (started, clock.now)


def test_payment_refuses_clear_card_and_unknown_call(store: Store):
    common = {"bill_id": BILL, "payment_id": PAYMENT, "amount": 1_234_000, "result": "success"}
    with pytest.raises(ValueError):
        store.record_payment(call_id=None, card_masked="6221061234567891", **common)
    with pytest.raises(KeyError):
        store.record_payment(call_id=42, card_masked=CARD_MASKED, **common)
    assert store.recent_payments() == []
    store.record_payment(call_id=None, card_masked=None, **common)  # bank unreachable
    assert len(store.recent_payments()) == 1


def test_naive_timestamps_are_refused(store: Store):
    call = store.open_call("ttyACM0", None)
    with pytest.raises(ValueError, match="timezone"):
        store.update_call(call, answered_at=datetime(2025, 1, 1))
