"""The one storage module: bills, what callers asked us to remember, and the
record of every call and payment attempt.

SQLite through sqlite-utils, in WAL mode so that the CLI can import bills
while the daemon answers calls. The schema is owned here and upgraded by
numbered migrations, recorded in the ``schema_version`` table; a database
from a newer release is refused rather than misread. Every SQLite failure
(locked, missing, corrupt, disk full) surfaces as :class:`StoreUnavailable`,
which the call flow turns into "the service is temporarily unavailable".

Bill IDs are stored in their canonical 13-digit, zero-padded form (as printed
and as callers type them); every method accepts a bill ID with or without
its leading zeros. Card numbers never enter this module in clear: the vault
hands over opaque ciphertext, and only masked numbers (``622106******1234``)
are accepted in call and payment records.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlite_utils

from daemon1521.billing.cards import is_masked
from daemon1521.billing.ids import normalize_bill_id, normalize_payment_id

DEFAULT_STORE_PATH = "/var/lib/daemon1521/daemon1521.db"
"""In the daemon's systemd StateDirectory."""
STORE_ENV = "DAEMON1521_STORE"
"""Environment variable that overrides :data:`DEFAULT_STORE_PATH`."""
DEFAULT_BUSY_TIMEOUT = 5.0
"""Seconds a write waits for another process's write (an import) to finish."""
SCHEMA_TABLE = "schema_version"
CALL_FIELDS = frozenset(
    {"answered_at", "ended_at", "last_state", "bill_id", "amount_announced", "outcome", "reason"}
)
"""Call columns :meth:`Store.update_call` may set."""
_TIME_FIELDS = frozenset({"started_at", "answered_at", "ended_at", "updated_at"})
_DIFFERS = "(b.payment_id IS NOT i.payment_id OR b.amount_rials IS NOT i.amount_rials)"
_COUNT_INCOMING = f"""
    SELECT coalesce(sum(b.bill_id IS NULL), 0),
           coalesce(sum(b.bill_id IS NOT NULL AND {_DIFFERS}), 0),
           coalesce(sum(b.bill_id IS NOT NULL AND NOT {_DIFFERS}), 0)
    FROM temp.incoming_bills AS i LEFT JOIN main.bills AS b ON b.bill_id = i.bill_id
"""
_MERGE_INCOMING = f"""
    INSERT INTO main.bills (bill_id, payment_id, amount_rials, updated_at)
    SELECT i.bill_id, i.payment_id, i.amount_rials, ?
    FROM temp.incoming_bills AS i LEFT JOIN main.bills AS b ON b.bill_id = i.bill_id
    WHERE b.bill_id IS NULL OR {_DIFFERS}
    ON CONFLICT(bill_id) DO UPDATE SET payment_id = excluded.payment_id,
        amount_rials = excluded.amount_rials, updated_at = excluded.updated_at
"""


class StoreUnavailable(Exception):
    """The database cannot be used right now; the service must say so."""


class CallOutcome(StrEnum):
    """How a call ended: the vocabulary of ``calls.outcome``. Where in the
    flow a caller hung up is in ``last_state``; details go in ``reason``."""

    PAID = "paid"
    DECLINED = "declined"  # the bank refused the payment
    NOT_PAID = "not_paid"  # debt announced, caller chose not to pay
    NO_DEBT = "no_debt"
    HUNG_UP = "hung_up"
    NO_INPUT = "no_input"
    INVALID_INPUT = "invalid_input"
    BANK_BUSY = "bank_busy"  # no free outbound line
    BANK_UNREACHABLE = "bank_unreachable"
    PAYMENT_UNKNOWN = "payment_unknown"  # the bank's result could not be read
    SERVICE_UNAVAILABLE = "service_unavailable"
    ERROR = "error"
    INTERRUPTED = "interrupted"  # the daemon stopped (killed, crashed) during the call


@dataclass(frozen=True)
class Bill:
    bill_id: str
    payment_id: str | None
    amount_rials: int
    updated_at: datetime


@dataclass(frozen=True)
class RememberedCard:
    ciphertext: bytes
    masked: str
    updated_at: datetime


@dataclass(frozen=True)
class CallRecord:
    id: int
    line: str
    caller_number: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    states: tuple[str, ...]
    last_state: str | None
    bill_id: str | None
    amount_announced: int | None
    outcome: str | None
    reason: str | None


@dataclass(frozen=True)
class PaymentRecord:
    id: int
    call_id: int | None
    bill_id: str
    payment_id: str | None
    amount: int
    card_masked: str | None
    result: str
    tracking: str | None
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class CallCounts:
    """How many calls started since a moment: in all, by outcome (``in_progress``
    while open) and by line."""

    total: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)
    lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


# --------------------------------------------------------------------------
# Schema: migration N brings a database from version N-1 to N.


def _migration_1(db: sqlite_utils.Database) -> None:
    db["bills"].create(
        {"bill_id": str, "payment_id": str, "amount_rials": int, "updated_at": str},
        pk="bill_id",
        not_null={"amount_rials", "updated_at"},
    )
    db["remembered_bills"].create(
        {"caller_number": str, "bill_id": str, "updated_at": str},
        pk="caller_number",
        not_null={"bill_id", "updated_at"},
    )
    db["remembered_cards"].create(
        {"caller_number": str, "card_ciphertext": bytes, "card_masked": str, "updated_at": str},
        pk="caller_number",
        not_null={"card_ciphertext", "card_masked", "updated_at"},
    )
    db["calls"].create(
        {
            "id": int,
            "line": str,
            "caller_number": str,
            "started_at": str,
            "answered_at": str,
            "ended_at": str,
            "states": str,
            "last_state": str,
            "bill_id": str,
            "amount_announced": int,
            "outcome": str,
            "reason": str,
        },
        pk="id",
        not_null={"line", "started_at", "states"},
        defaults={"states": "[]"},
    )
    db["calls"].create_index(["started_at"])
    db["payments"].create(
        {
            "id": int,
            "call_id": int,
            "bill_id": str,
            "payment_id": str,
            "amount": int,
            "card_masked": str,
            "result": str,
            "tracking": str,
            "started_at": str,
            "ended_at": str,
        },
        pk="id",
        not_null={"bill_id", "amount", "result", "started_at"},
        foreign_keys=[("call_id", "calls", "id")],
    )
    db["payments"].create_index(["call_id"])
    db["payments"].create_index(["bill_id"])


Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: tuple[Migration, ...] = (_migration_1,)
"""Migration i (0-based) upgrades schema version i to i + 1."""


def schema_version(db: sqlite_utils.Database) -> int:
    if not db[SCHEMA_TABLE].exists():
        return 0
    row = db.execute(f"SELECT max(version) FROM {SCHEMA_TABLE}").fetchone()
    return int(row[0] or 0)


def migrate(
    db: sqlite_utils.Database,
    migrations: Iterable[Migration] = MIGRATIONS,
    now: Callable[[], datetime] | None = None,
) -> int:
    """Bring the schema up to date; returns the resulting version. Runs under
    an immediate (write) transaction, so two processes opening a fresh
    database at once do not both create it."""
    steps = tuple(migrations)
    clock = now or _utcnow
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        db[SCHEMA_TABLE].create(
            {"version": int, "applied_at": str}, pk="version", if_not_exists=True
        )
        current = schema_version(db)
        if current > len(steps):
            raise StoreUnavailable(
                f"the database has schema version {current}; this release knows up to "
                f"{len(steps)}: refusing to use it"
            )
        for version in range(current + 1, len(steps) + 1):
            steps[version - 1](db)
            db.execute(
                f"INSERT INTO {SCHEMA_TABLE} (version, applied_at) VALUES (?, ?)",
                (version, _iso(clock())),
            )
        db.conn.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    return len(steps)


# --------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _caller_key(caller: str | None) -> str | None:
    """A caller number that can identify a caller, or None: missing, empty,
    or a caller-ID marker without digits ("P" private, "O" unavailable)."""
    if not isinstance(caller, str) or not any(ch.isdigit() for ch in caller):
        return None
    return caller.strip()


def _caller(caller: str | None) -> str:
    key = _caller_key(caller)
    if key is None:
        raise ValueError("remembering needs a caller number (caller ID)")
    return key


class Store:
    """All persistent state of the daemon. Open with :meth:`open`; every
    method is one short transaction, which may still wait seconds for
    another process's lock or a slow disk: the CLI uses it directly, the
    daemon through :class:`~daemon1521.billing.async_store.AsyncStore`, whose
    threads own one Store each. One caller at a time."""

    def __init__(self, db: sqlite_utils.Database, now: Callable[[], datetime]) -> None:
        self.db = db
        self._now = now

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        now: Callable[[], datetime] | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        page_cache_kib: int | None = None,
    ) -> Store:
        """Open (creating if needed) the database at ``path`` (its directory
        must exist), in WAL mode and at the current schema version. ``now``
        supplies aware timestamps (an emulated clock in tests);
        ``busy_timeout`` is how long a write waits for another writer;
        ``page_cache_kib`` bounds SQLite's page cache (default: SQLite's 2 MiB)."""
        clock = now or _utcnow
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False)
            db = sqlite_utils.Database(conn, execute_plugins=False)
            if str(path) != ":memory:":
                db.enable_wal()
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            if page_cache_kib is not None:
                db.execute(f"PRAGMA cache_size=-{int(page_cache_kib)}")
            migrate(db, now=clock)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise StoreUnavailable(f"cannot open the store at {path}: {exc}") from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return cls(db, clock)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _guard(self) -> Iterator[sqlite_utils.Database]:
        """Every SQLite error as StoreUnavailable."""
        try:
            yield self.db
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"store error: {exc}") from exc

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite_utils.Database]:
        """One transaction. Writes take the write lock at BEGIN (IMMEDIATE):
        a read-then-write transaction in WAL mode would otherwise fail at
        once, without waiting, when another process wrote in between."""
        with self._guard() as db:
            conn = db.conn
            conn.execute(begin)
            try:
                yield db
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction, for a batch of writes that must land together
        (:mod:`daemon1521.billing.journal`); SQLite errors as StoreUnavailable."""
        with self._transaction() as db:
            yield db

    def set_busy_timeout(self, seconds: float) -> None:
        """How long a write waits for another process's write from now on."""
        with self._guard() as db:
            db.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")

    def _stamp(self) -> str:
        return _iso(self._now())

    # ---------------------------------------------------------------- bills

    def get_bill(self, bill_id: str) -> Bill | None:
        """The bill with this ID (with or without leading zeros), or None.
        ValueError for a string that is not 13 digits or fewer."""
        key = normalize_bill_id(bill_id)
        with self._guard() as db:
            row = db.execute(
                "SELECT bill_id, payment_id, amount_rials, updated_at FROM bills WHERE bill_id = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return Bill(row[0], row[1], row[2], datetime.fromisoformat(row[3]))

    def upsert_bills(self, rows: Iterable[Mapping[str, Any] | Bill]) -> UpsertCounts:
        """Insert or update bills (``bill_id``, ``payment_id``, ``amount_rials``)
        in one transaction. Rows equal to what is stored keep their
        ``updated_at``, so re-running an import changes nothing; a bill given
        twice counts once, the last row winning.

        ``rows`` may be a slow generator (an importer validating a large
        file): rows are first staged in a temporary table, which takes no
        lock on the database, and then merged in one short write
        transaction, so the daemon's own writes are not held up. If the
        generator raises, nothing is stored."""
        stamp = self._stamp()
        with self._guard() as db:
            db.execute("DROP TABLE IF EXISTS temp.incoming_bills")
            db.execute(
                "CREATE TEMP TABLE incoming_bills (bill_id TEXT PRIMARY KEY, payment_id TEXT,"
                " amount_rials INTEGER NOT NULL)"
            )
        try:
            with self._transaction("BEGIN") as db:  # temp tables only: no database lock
                db.conn.executemany(
                    "INSERT INTO temp.incoming_bills VALUES (?, ?, ?) ON CONFLICT(bill_id)"
                    " DO UPDATE SET payment_id = excluded.payment_id,"
                    " amount_rials = excluded.amount_rials",
                    _bill_rows(rows),
                )
            with self._transaction() as db:
                inserted, updated, unchanged = db.execute(_COUNT_INCOMING).fetchone()
                db.execute(_MERGE_INCOMING, (stamp,))
        finally:
            with self._guard() as db:
                db.execute("DROP TABLE IF EXISTS temp.incoming_bills")
        return UpsertCounts(inserted, updated, unchanged)

    # ------------------------------------------------------ remembered bills

    def remembered_bill(self, caller: str | None) -> str | None:
        """The caller number's remembered bill ID (13-digit form), or None
        (always None without a usable caller number)."""
        key = _caller_key(caller)
        if key is None:
            return None
        with self._guard() as db:
            row = db.execute(
                "SELECT bill_id FROM remembered_bills WHERE caller_number = ?", (key,)
            ).fetchone()
        return None if row is None else row[0]

    def remember_bill(self, caller: str, bill_id: str) -> None:
        """Remember (or replace) the bill ID of a caller number."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO remembered_bills (caller_number, bill_id, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(caller_number) DO UPDATE SET bill_id = excluded.bill_id,"
                " updated_at = excluded.updated_at",
                (_caller(caller), normalize_bill_id(bill_id), self._stamp()),
            )

    def forget_bill(self, caller: str) -> bool:
        """Forget a caller's bill ID; True if one was remembered."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM remembered_bills WHERE caller_number = ?", (_caller(caller),)
            )
        return cursor.rowcount > 0

    # ------------------------------------------------------ remembered cards

    def remembered_card(self, caller: str | None) -> RememberedCard | None:
        """The caller number's remembered card (ciphertext for the vault, and
        the masked number), or None (always without a usable caller number)."""
        key = _caller_key(caller)
        if key is None:
            return None
        with self._guard() as db:
            row = db.execute(
                "SELECT card_ciphertext, card_masked, updated_at FROM remembered_cards "
                "WHERE caller_number = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return RememberedCard(bytes(row[0]), row[1], datetime.fromisoformat(row[2]))

    def remember_card(self, caller: str, ciphertext: bytes, masked: str) -> None:
        """Remember (or replace) a caller's card: ``ciphertext`` from the vault,
        ``masked`` for display. A clear card number is refused."""
        if not isinstance(ciphertext, bytes | bytearray | memoryview):
            raise TypeError("card ciphertext must be bytes from the vault")
        blob = bytes(ciphertext)
        if not blob or _looks_like_clear_card(blob):
            raise ValueError("refusing to store what looks like a card number in clear")
        _require_masked(masked)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO remembered_cards (caller_number, card_ciphertext, card_masked,"
                " updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(caller_number) DO UPDATE SET"
                " card_ciphertext = excluded.card_ciphertext,"
                " card_masked = excluded.card_masked, updated_at = excluded.updated_at",
                (_caller(caller), blob, masked, self._stamp()),
            )

    def forget_card(self, caller: str) -> bool:
        """Forget a caller's card; True if one was remembered."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM remembered_cards WHERE caller_number = ?", (_caller(caller),)
            )
        return cursor.rowcount > 0

    def remembered_card_list(self) -> list[tuple[str, RememberedCard]]:
        """Every remembered card with its caller number, newest first (for operators)."""
        with self._guard() as db:
            rows = db.execute(
                "SELECT caller_number, card_ciphertext, card_masked, updated_at"
                " FROM remembered_cards ORDER BY updated_at DESC, caller_number"
            ).fetchall()
        return [
            (row[0], RememberedCard(bytes(row[1]), row[2], datetime.fromisoformat(row[3])))
            for row in rows
        ]

    # ----------------------------------------------------------------- calls

    def open_call(self, line: str, caller: str | None) -> int:
        """Start the record of a call; returns its id."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO calls (line, caller_number, started_at, states)"
                " VALUES (?, ?, ?, '[]')",
                (str(line), caller or None, self._stamp()),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def update_call(self, call_id: int, **fields: Any) -> None:
        """Set fields of a call record (see :data:`CALL_FIELDS`); datetimes are
        stored as UTC ISO 8601, ``bill_id`` in canonical form."""
        unknown = set(fields) - CALL_FIELDS
        if unknown:
            raise ValueError(f"unknown call field(s): {', '.join(sorted(unknown))}")
        if not fields:
            return
        values = {name: _column_value(name, value) for name, value in fields.items()}
        sets = ", ".join(f"{name} = ?" for name in values)
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE calls SET {sets} WHERE id = ?", (*values.values(), call_id)
            )
            if cursor.rowcount == 0:
                raise KeyError(f"no call {call_id}")

    def add_state(self, call_id: int, state: str) -> None:
        """Note that a call reached ``state`` (appended to its states, and
        made its last state)."""
        with self._transaction() as db:
            row = db.execute("SELECT states FROM calls WHERE id = ?", (call_id,)).fetchone()
            if row is None:
                raise KeyError(f"no call {call_id}")
            states = [*json.loads(row[0]), str(state)]
            db.execute(
                "UPDATE calls SET states = ?, last_state = ? WHERE id = ?",
                (json.dumps(states), str(state), call_id),
            )

    def close_call(
        self, call_id: int, outcome: CallOutcome | str, reason: str | None = None
    ) -> bool:
        """End a call record with its outcome. The first close wins (a hang-up
        handler and a final cleanup may both try): returns False when the call
        was already closed."""
        if not str(outcome):
            raise ValueError("a call outcome is required")
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE calls SET ended_at = ?, outcome = ?, reason = ? "
                "WHERE id = ? AND outcome IS NULL",
                (self._stamp(), str(outcome), reason, call_id),
            )
            if cursor.rowcount:
                return True
            if db.execute("SELECT 1 FROM calls WHERE id = ?", (call_id,)).fetchone() is None:
                raise KeyError(f"no call {call_id}")
        return False

    def close_interrupted(self, reason: str) -> int:
        """Close every call record still open: at start-up they belong to a run
        that ended without closing them (killed, crashed, power lost). Returns
        how many were closed, as ``interrupted``."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE calls SET ended_at = ?, outcome = ?, reason = ? WHERE outcome IS NULL",
                (self._stamp(), str(CallOutcome.INTERRUPTED), reason),
            )
        return cursor.rowcount

    def last_ids(self) -> tuple[int, int]:
        """The highest call and payment ids in use (0 when none)."""
        with self._guard() as db:
            calls = db.execute("SELECT coalesce(max(id), 0) FROM calls").fetchone()[0]
            payments = db.execute("SELECT coalesce(max(id), 0) FROM payments").fetchone()[0]
        return int(calls), int(payments)

    def count_calls(self, since: datetime) -> CallCounts:
        """Calls started at or after ``since``, counted in the database (no limit)."""
        with self._guard() as db:
            rows = db.execute(
                "SELECT line, coalesce(outcome, 'in_progress'), count(*) FROM calls"
                " WHERE started_at >= ? GROUP BY 1, 2",
                (_iso(since),),
            ).fetchall()
        outcomes: dict[str, int] = {}
        lines: dict[str, int] = {}
        for line, outcome, count in rows:
            outcomes[outcome] = outcomes.get(outcome, 0) + count
            lines[line] = lines.get(line, 0) + count
        return CallCounts(sum(lines.values()), outcomes, lines)

    def get_call(self, call_id: int) -> CallRecord | None:
        with self._guard() as db:
            row = next(db.query("SELECT * FROM calls WHERE id = ?", (call_id,)), None)
        return None if row is None else _call_record(row)

    def recent_calls(self, since: datetime | None = None, limit: int = 100) -> list[CallRecord]:
        """Calls newest first, optionally only those started at or after ``since``."""
        where, params = ("WHERE started_at >= ?", [_iso(since)]) if since else ("", [])
        with self._guard() as db:
            rows = list(
                db.query(
                    f"SELECT * FROM calls {where} ORDER BY started_at DESC, id DESC LIMIT ?",
                    [*params, int(limit)],
                )
            )
        return [_call_record(row) for row in rows]

    # -------------------------------------------------------------- payments

    def record_payment(
        self,
        *,
        call_id: int | None,
        bill_id: str,
        payment_id: str | None,
        amount: int,
        card_masked: str | None,
        result: str,
        tracking: str | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
    ) -> int:
        """Record one payment attempt with its outcome (``result``: the bank's
        answer, e.g. "success", "wrong_pin", "hung_up"); returns its id. The
        card only ever as masked; ``ended_at`` defaults to now."""
        if card_masked is not None:
            _require_masked(card_masked)
        if not str(result):
            raise ValueError("a payment result is required")
        stamp = self._stamp()
        row = (
            call_id,
            normalize_bill_id(bill_id),
            None if payment_id is None else normalize_payment_id(payment_id),
            int(amount),
            card_masked,
            str(result),
            tracking,
            _iso(started_at) if started_at else stamp,
            _iso(ended_at) if ended_at else stamp,
        )
        with self._transaction() as db:
            if (
                call_id is not None
                and db.execute("SELECT 1 FROM calls WHERE id = ?", (call_id,)).fetchone() is None
            ):
                raise KeyError(f"no call {call_id}")
            cursor = db.execute(
                "INSERT INTO payments (call_id, bill_id, payment_id, amount, card_masked, result,"
                " tracking, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def payments_of_calls(self, call_ids: Iterable[int]) -> dict[int, list[PaymentRecord]]:
        """The payment attempts of these calls, oldest first per call."""
        ids = sorted({int(i) for i in call_ids})
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        with self._guard() as db:
            rows = list(
                db.query(
                    f"SELECT * FROM payments WHERE call_id IN ({marks}) ORDER BY started_at, id",
                    ids,
                )
            )
        found: dict[int, list[PaymentRecord]] = {}
        for row in rows:
            found.setdefault(row["call_id"], []).append(_payment_record(row))
        return found

    def count_payments(self, since: datetime) -> dict[str, int]:
        """The payment attempts of the calls started at or after ``since``, by
        result (no limit: counted in the database, not listed)."""
        with self._guard() as db:
            rows = db.execute(
                "SELECT p.result, count(*) FROM payments AS p JOIN calls AS c"
                " ON p.call_id = c.id WHERE c.started_at >= ? GROUP BY 1",
                (_iso(since),),
            ).fetchall()
        return {result: int(count) for result, count in rows}

    def recent_payments(
        self, since: datetime | None = None, limit: int = 100
    ) -> list[PaymentRecord]:
        """Payment attempts newest first."""
        where, params = ("WHERE started_at >= ?", [_iso(since)]) if since else ("", [])
        with self._guard() as db:
            rows = list(
                db.query(
                    f"SELECT * FROM payments {where} ORDER BY started_at DESC, id DESC LIMIT ?",
                    [*params, int(limit)],
                )
            )
        return [_payment_record(r) for r in rows]


def _bill_rows(rows: Iterable[Mapping[str, Any] | Bill]) -> Iterator[tuple[str, str | None, int]]:
    for row in rows:
        if isinstance(row, Bill):
            bill_id, payment_id, amount = row.bill_id, row.payment_id, row.amount_rials
        else:
            bill_id, payment_id, amount = row["bill_id"], row.get("payment_id"), row["amount_rials"]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"bill {bill_id}: amount_rials must be a non-negative int")
        yield (
            normalize_bill_id(bill_id),
            None if payment_id in (None, "") else normalize_payment_id(payment_id),
            amount,
        )


def _column_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _TIME_FIELDS:
        if not isinstance(value, datetime):
            raise TypeError(f"{name} must be a datetime")
        return _iso(value)
    if name == "bill_id":
        return normalize_bill_id(value)
    if name == "amount_announced":
        return int(value)
    return str(value)


def _call_record(row: Mapping[str, Any]) -> CallRecord:
    started = datetime.fromisoformat(row["started_at"])
    return CallRecord(
        id=row["id"],
        line=row["line"],
        caller_number=row["caller_number"],
        started_at=started,
        answered_at=_dt(row["answered_at"]),
        ended_at=_dt(row["ended_at"]),
        states=tuple(json.loads(row["states"])),
        last_state=row["last_state"],
        bill_id=row["bill_id"],
        amount_announced=row["amount_announced"],
        outcome=row["outcome"],
        reason=row["reason"],
    )


def _payment_record(r: Mapping[str, Any]) -> PaymentRecord:
    return PaymentRecord(
        id=r["id"],
        call_id=r["call_id"],
        bill_id=r["bill_id"],
        payment_id=r["payment_id"],
        amount=r["amount"],
        card_masked=r["card_masked"],
        result=r["result"],
        tracking=r["tracking"],
        started_at=datetime.fromisoformat(r["started_at"]),
        ended_at=_dt(r["ended_at"]),
    )


def _require_masked(masked: str) -> None:
    if not is_masked(masked):
        raise ValueError("card numbers are recorded only masked (first 6, last 4 digits)")


def _looks_like_clear_card(blob: bytes) -> bool:
    """A plain digit string of card length, in place of ciphertext."""
    text = blob.translate(None, b" -").strip()
    return 12 <= len(text) <= 19 and text.isdigit()
