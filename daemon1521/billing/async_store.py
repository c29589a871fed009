"""The store as the event loop sees it: reads awaited off the loop, writes queued.

A SQLite call can wait seconds (another process holds the write lock, a slow
or full disk), and the loop paces the audio of every line and pings the
watchdog, so nothing on the loop touches SQLite. :class:`AsyncStore` keeps
two connections, each in its own thread:

- **reads** (a bill, a remembered bill or card, call and payment lists and
  counts) are coroutines run on a reader thread. In WAL mode a read needs no
  lock, so debts are still announced while another process holds the write
  lock;
- **writes** (call records, remembered bills and cards, cards forgotten,
  payment attempts) return at once: each becomes a journal entry
  (:mod:`daemon1521.billing.journal`), its id and timestamp decided on the
  spot, and a writer thread applies the queue in batches. While the
  database refuses writes (locked, disk full, file deleted) the entries wait
  in memory and in the spool (:mod:`daemon1521.billing.spool`) and are
  written when it returns; a start after a crash replays the spool. A call
  never waits for, or fails on, its own record.

The writer also watches the database file's identity (device and inode): a
file replaced under the daemon is reopened; a file deleted (or its directory)
stops the writes, keeping them queued, until it is back; the entries still
queued at shutdown go to the spool, its directory recreated if need be.
Problems show as one log line when they start and one when they end, and in
:meth:`AsyncStore.health` for ``status``.

At start-up the records of calls a previous run left open (killed mid-call)
are closed as ``interrupted``.

Limits: entries reach the spool only once a write has failed, so a kill in
the first :data:`WRITE_WAIT` of an outage loses what came in meanwhile; and
queued entries stay in memory as well until written (a few hundred bytes
each: a whole day's outage with 128 busy lines would hold a few hundred
megabytes).

Ids are allocated here (the highest in the database plus one), so that a
queued call has its id before it is written; the daemon is the only process
that writes calls and payments. This is also the seam for a server database:
the façade needs of its backend only the read methods of
:class:`~daemon1521.billing.store.Store`, ``apply`` of a batch of journal
entries in one transaction, and the highest ids in use; a PostgreSQL backend
would provide those (with an async driver, or on the same threads) and keep
the queue, the spool and the ids unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from daemon1521.billing import journal
from daemon1521.billing.ids import normalize_bill_id, normalize_payment_id
from daemon1521.billing.journal import Entry
from daemon1521.billing.spool import Spool
from daemon1521.billing.store import (
    CALL_FIELDS,
    Bill,
    CallCounts,
    CallOutcome,
    CallRecord,
    PaymentRecord,
    RememberedCard,
    Store,
    StoreUnavailable,
    _caller,
    _caller_key,
    _column_value,
    _iso,
    _looks_like_clear_card,
    _require_masked,
)

T = TypeVar("T")

PAGE_CACHE_KIB = 256
"""SQLite's page cache for each of the daemon's two connections. The default (2
MiB) keeps every record page touched until it is full, so a daemon's memory
would grow with its records for hours, by up to 4 MiB (two connections over a
growing database, measured outside the daemon). The daemon's working set is
a few dozen pages (the bill index's upper levels, the newest records), and
the operating system caches the file anyway. Imports and other commands
keep SQLite's default: they run once, and a big import wants the larger
cache."""
WRITE_WAIT = 0.5
"""Seconds one write attempt waits for another process's lock before the
entries go to the spool (the loop never waits for it)."""
RETRY_INTERVAL = 1.0
"""Seconds between attempts while the database refuses writes."""
CHECK_INTERVAL = 2.0
"""Seconds between checks of the database file's identity when nothing is written."""
INTERRUPTED_REASON = "the daemon stopped during the call"

_PERMANENT = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)
"""Errors of one entry, not of the database: retrying would not help."""


@dataclass(frozen=True)
class StoreHealth:
    """What ``status`` shows of the store."""

    problem: str | None
    """One line naming what is wrong, None when writes go through."""
    since: datetime | None
    queued: int
    """Records waiting to be written."""
    spooled: int
    """How many of them are in the spool file (safe across a restart)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.problem is None,
            "problem": self.problem,
            "since": self.since.isoformat() if self.since else None,
            "queued": self.queued,
            "spooled": self.spooled,
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class AsyncStore:
    """The daemon's store; open with :meth:`open`, close with :meth:`close`."""

    def __init__(
        self,
        path: str | Path,
        *,
        now: Callable[[], datetime] | None = None,
        write_wait: float = WRITE_WAIT,
        retry_interval: float = RETRY_INTERVAL,
        check_interval: float = CHECK_INTERVAL,
        on_problem: Callable[[str | None], None] | None = None,
    ) -> None:
        """``on_problem`` is called on the event loop when the problem changes
        (None once writes go through again)."""
        self.path = Path(path)
        self._on_problem = on_problem
        self._now = now or _utcnow
        self._write_wait = write_wait
        self._retry_interval = retry_interval
        self._check_interval = check_interval
        self._spool = Spool(self.path)
        self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="daemon1521-store-read")
        self._reads_in_flight = 0
        self._reader: Store | None = None
        self._reader_stale = False
        self._writer: Store | None = None
        self._writer_thread: threading.Thread | None = None
        self._identity: tuple[int, int] | None = None
        self._cond = threading.Condition()
        self._incoming: list[Entry] = []  # guarded by _cond
        self._pending: list[Entry] = []  # guarded by _cond; the writer's batch
        self._spooled = 0  # how many of _pending are in the spool (writer thread)
        self._stopping = False
        self._closed = False
        self._ids_lock = threading.Lock()
        self._next_call = 1
        self._next_payment = 1
        self._states: dict[int, int] = {}  # open calls of this run: states queued so far
        self._db_problem: str | None = None
        self._spool_problem: str | None = None
        self._problem: str | None = None
        self._problem_since: datetime | None = None
        self._retry_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settle_waiters: list[asyncio.Future[None]] = []

    # -- life cycle ------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path, **options: Any) -> AsyncStore:
        """Open the database (creating it if needed), replay a spool a previous
        run left, close the records it left open, and start the writer.
        Raises :class:`StoreUnavailable` when the database cannot be opened."""
        store = cls(path, **options)
        store._loop = asyncio.get_running_loop()
        try:
            await store._loop.run_in_executor(store._reader_pool, store._start)
        except BaseException:
            await store._shutdown_reader()
            raise
        return store

    def _open_connection(self) -> Store:
        return Store.open(self.path, now=self._now, page_cache_kib=PAGE_CACHE_KIB)

    def _start(self) -> None:
        self._writer = self._open_connection()
        try:
            self._reader = self._open_connection()
            self._identity = _identity(self.path)
            self._replay()
            calls, payments = self._writer.last_ids()
            for entry in self._pending:
                calls = max(calls, getattr(entry, "call_id", None) or 0)
                if isinstance(entry, journal.RecordPayment):
                    payments = max(payments, entry.id)
            self._next_call, self._next_payment = calls + 1, payments + 1
            self._writer.set_busy_timeout(self._write_wait)
        except BaseException:
            self._writer.close()
            if self._reader is not None:
                self._reader.close()
            self._writer = self._reader = None
            raise
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="daemon1521-store-write", daemon=True
        )
        self._writer_thread.start()

    def _replay(self) -> None:
        """Write what a previous run left in the spool, then close its open calls."""
        assert self._writer is not None
        try:
            entries = self._spool.read()
        except OSError as exc:
            self._report(spool=f"the spool {self._spool.path} cannot be read: {exc}")
            entries = []
        if entries:
            self._pending, self._spooled = list(entries), len(entries)
            if not self._write_pending():
                logger.error(
                    "store: {} record(s) of a previous run are still in {}; retrying",
                    len(entries),
                    self._spool.path,
                )
                return
            logger.info("store: wrote {} record(s) a previous run had queued", len(entries))
        closed = self._writer.close_interrupted(INTERRUPTED_REASON)
        if closed:
            logger.warning(
                "store: closed {} call record(s) a previous run left in progress, as {}",
                closed,
                CallOutcome.INTERRUPTED,
            )

    async def close(self) -> None:
        """Write what is queued (or spool it), stop the threads, close the database."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread = self._writer_thread
        if thread is not None:
            await asyncio.wrap_future(self._reader_pool.submit(thread.join))
        await self._shutdown_reader()

    async def _shutdown_reader(self) -> None:
        def close_reader() -> None:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

        await asyncio.wrap_future(self._reader_pool.submit(close_reader))
        self._reader_pool.shutdown(wait=False)

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- health ----------------------------------------------------------------------

    def health(self) -> StoreHealth:
        with self._cond:
            queued = len(self._incoming) + len(self._pending)
            spooled = self._spooled
        return StoreHealth(self._problem, self._problem_since, queued, spooled)

    @property
    def problem(self) -> str | None:
        return self._problem

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write queued so far is in the database; False if
        ``timeout`` (real seconds) passed first."""
        waiter = asyncio.get_running_loop().create_future()
        self._settle_waiters.append(waiter)  # before the check: the writer looks after settling
        if self._settled():
            self._settle_waiters.remove(waiter)
            return True
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return False
        finally:
            if waiter in self._settle_waiters:
                self._settle_waiters.remove(waiter)
        return True

    def wait_written(self, timeout: float) -> bool:
        """:meth:`flush` for code not on the loop (a test bed reading records)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._incoming or self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def _settled(self) -> bool:
        with self._cond:
            return not self._incoming and not self._pending

    def _wake_settled(self) -> None:
        waiters, self._settle_waiters = self._settle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- reads -----------------------------------------------------------------------

    async def _read(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        self._reads_in_flight += 1
        try:
            return await loop.run_in_executor(
                self._reader_pool, functools.partial(self._read_now, method, *args, **kwargs)
            )
        finally:
            self._reads_in_flight -= 1

    def reads_in_flight(self) -> int:
        """Reads awaited on the reader thread right now. An emulated line clock
        running flat out holds its frames while there are any, since the call
        waiting for them waits in real time."""
        return self._reads_in_flight

    def _read_now(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._reader_stale or self._reader is None:
            self._reopen_reader()
        assert self._reader is not None
        return method(self._reader, *args, **kwargs)

    def _reopen_reader(self) -> None:
        try:
            fresh = self._open_connection()
        except StoreUnavailable:
            if self._reader is None:
                raise
            return  # keep reading the old file until the new one opens
        if self._reader is not None:
            self._reader.close()
        self._reader, self._reader_stale = fresh, False

    async def get_bill(self, bill_id: str) -> Bill | None:
        return await self._read(Store.get_bill, bill_id)

    async def remembered_bill(self, caller: str | None) -> str | None:
        return await self._read(Store.remembered_bill, caller)

    async def remembered_card(self, caller: str | None) -> RememberedCard | None:
        """The caller's card as the queue will leave it: a card forgotten (or
        remembered) but not yet written counts as done, so a forgotten card is
        not offered again while the database refuses writes."""
        key = _caller_key(caller)
        if key is None:
            return None
        with self._cond:
            queued = [*self._pending, *self._incoming]
        for entry in reversed(queued):
            if isinstance(entry, journal.ForgetCard) and entry.caller == key:
                return None
            if isinstance(entry, journal.RememberCard) and entry.caller == key:
                at = datetime.fromisoformat(entry.at)
                return RememberedCard(entry.ciphertext, entry.masked, at)
        return await self._read(Store.remembered_card, key)

    async def remembered_card_list(self) -> list[tuple[str, RememberedCard]]:
        return await self._read(Store.remembered_card_list)

    async def get_call(self, call_id: int) -> CallRecord | None:
        return await self._read(Store.get_call, call_id)

    async def recent_calls(
        self, since: datetime | None = None, limit: int = 100
    ) -> list[CallRecord]:
        return await self._read(Store.recent_calls, since, limit)

    async def recent_payments(
        self, since: datetime | None = None, limit: int = 100
    ) -> list[PaymentRecord]:
        return await self._read(Store.recent_payments, since, limit)

    async def payments_of_calls(self, call_ids: list[int]) -> dict[int, list[PaymentRecord]]:
        return await self._read(Store.payments_of_calls, list(call_ids))

    async def count_payments(self, since: datetime) -> dict[str, int]:
        """Payment attempts of the calls started since ``since``, by result,
        as written (:meth:`flush` first for the latest)."""
        return await self._read(Store.count_payments, since)

    async def count_calls(self, since: datetime) -> CallCounts:
        """Calls started since ``since``: those in the database and those still
        queued (counted as in progress until written)."""
        counted = await self._read(Store.count_calls, since)
        stamp = _iso(since)
        with self._cond:
            queued = [
                e
                for e in (*self._pending, *self._incoming)
                if isinstance(e, journal.OpenCall) and e.at >= stamp
            ]
        if not queued:
            return counted
        outcomes, lines = dict(counted.outcomes), dict(counted.lines)
        for entry in queued:
            outcomes["in_progress"] = outcomes.get("in_progress", 0) + 1
            lines[entry.line] = lines.get(entry.line, 0) + 1
        return CallCounts(counted.total + len(queued), outcomes, lines)

    # -- writes: queued at once, never waiting ----------------------------------------

    def _queue(self, entry: Entry) -> None:
        with self._cond:
            if self._stopping:
                raise StoreUnavailable("the store is closed")
            self._incoming.append(entry)
            self._cond.notify_all()

    def _stamp(self, when: datetime | None = None) -> str:
        return _iso(when or self._now())

    def open_call(self, line: str, caller: str | None) -> int:
        """Start the record of a call; returns its id."""
        with self._ids_lock:
            call_id, self._next_call = self._next_call, self._next_call + 1
        self._queue(journal.OpenCall(call_id, str(line), caller or None, self._stamp()))
        self._states[call_id] = 0
        return call_id

    def add_state(self, call_id: int, state: str) -> None:
        index = self._states.get(call_id)
        if index is not None:
            self._states[call_id] = index + 1
        self._queue(journal.AddState(call_id, str(state), index))

    def update_call(self, call_id: int, **fields: Any) -> None:
        unknown = set(fields) - CALL_FIELDS
        if unknown:
            raise ValueError(f"unknown call field(s): {', '.join(sorted(unknown))}")
        if fields:
            values = {name: _column_value(name, value) for name, value in fields.items()}
            self._queue(journal.UpdateCall(call_id, values))

    def close_call(
        self, call_id: int, outcome: CallOutcome | str, reason: str | None = None
    ) -> None:
        """End a call record; the first close written wins."""
        if not str(outcome):
            raise ValueError("a call outcome is required")
        self._states.pop(call_id, None)
        self._queue(journal.CloseCall(call_id, str(outcome), reason, self._stamp()))

    def remember_bill(self, caller: str, bill_id: str) -> None:
        self._queue(
            journal.RememberBill(_caller(caller), normalize_bill_id(bill_id), self._stamp())
        )

    def remember_card(self, caller: str, ciphertext: bytes, masked: str) -> None:
        """Remember a caller's card: vault ciphertext and the masked number only."""
        if not isinstance(ciphertext, bytes | bytearray | memoryview):
            raise TypeError("card ciphertext must be bytes from the vault")
        blob = bytes(ciphertext)
        if not blob or _looks_like_clear_card(blob):
            raise ValueError("refusing to store what looks like a card number in clear")
        _require_masked(masked)
        self._queue(journal.RememberCard(_caller(caller), blob, masked, self._stamp()))

    def forget_card(self, caller: str) -> None:
        """Forget a caller's card (a card remembered later is kept)."""
        self._queue(journal.ForgetCard(_caller(caller), self._stamp()))

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
        """Record one payment attempt (see :meth:`Store.record_payment`); returns its id."""
        if card_masked is not None:
            _require_masked(card_masked)
        if not str(result):
            raise ValueError("a payment result is required")
        stamp = self._stamp()
        with self._ids_lock:
            record_id, self._next_payment = self._next_payment, self._next_payment + 1
        self._queue(
            journal.RecordPayment(
                id=record_id,
                call_id=call_id,
                bill_id=normalize_bill_id(bill_id),
                payment_id=None if payment_id is None else normalize_payment_id(payment_id),
                amount=int(amount),
                card_masked=card_masked,
                result=str(result),
                tracking=tracking,
                started_at=self._stamp(started_at) if started_at else stamp,
                ended_at=self._stamp(ended_at) if ended_at else stamp,
            )
        )
        return record_id

    # -- the writer thread -------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            try:
                stopping = self._write_cycle()
            except Exception as exc:  # a bug here must not stop every later write
                problem = f"the writer failed: {type(exc).__name__}: {exc}"
                if problem != self._db_problem:
                    logger.opt(exception=exc).error("store: writer error")
                self._report(db=problem)
                self._retry_at = time.monotonic() + self._retry_interval
                stopping = self._stopping
                if stopping:
                    with contextlib.suppress(Exception):
                        self._spool_pending(final=True)
                else:
                    time.sleep(self._retry_interval)
            if stopping:
                break
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write_cycle(self) -> bool:
        """Wait for entries (or a retry), write or spool them; True once stopping."""
        with self._cond:
            if not self._incoming and not self._stopping:
                wait = self._check_interval
                if self._pending:
                    wait = max(0.0, self._retry_at - time.monotonic())
                self._cond.wait(wait)
            self._pending.extend(self._incoming)
            self._incoming.clear()
            stopping = self._stopping
        self._check_file()
        if self._pending and self._problem is not None:
            self._spool_pending(final=False)  # safe on disk before the next wait
        due = self._problem is None or time.monotonic() >= self._retry_at
        if self._pending and due and not self._write_pending():
            self._retry_at = time.monotonic() + self._retry_interval
        if self._pending:
            self._spool_pending(final=stopping)
        with self._cond:
            settled = not self._pending and not self._incoming
            self._cond.notify_all()
        if settled and self._settle_waiters and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._wake_settled)
        return stopping

    def _check_file(self) -> None:
        """Notice the database file deleted or replaced under us."""
        identity = _identity(self.path)
        if identity == self._identity:
            return
        if identity is None:
            self._report(
                db=f"the database file {self.path} is gone (deleted, or its directory):"
                " records are kept queued until it is back, and saved beside it at shutdown"
            )
            return
        logger.warning("store: {} was replaced; reopening it", self.path)
        try:
            fresh = self._open_connection()
            fresh.set_busy_timeout(self._write_wait)
        except StoreUnavailable as exc:
            self._report(db=f"the replaced database file cannot be opened: {exc}")
            return
        if self._writer is not None:
            self._writer.close()
        self._writer, self._identity, self._reader_stale = fresh, identity, True
        self._retry_at = 0.0

    def _write_pending(self) -> bool:
        """Apply the pending batch in one transaction; True when it is written."""
        if self._identity is None or _identity(self.path) != self._identity:
            return False
        writer = self._writer
        assert writer is not None
        with self._cond:
            batch = list(self._pending)
        try:
            with writer.transaction() as db:
                for entry in batch:
                    journal.apply(db, entry)
        except (StoreUnavailable, journal.EntryRefused) as exc:
            if isinstance(exc.__cause__, _PERMANENT) or isinstance(exc, journal.EntryRefused):
                batch = self._write_one_by_one(writer, batch)
            else:
                self._report(db=f"cannot write to the database: {exc.__cause__ or exc}")
                return False
        with self._cond:
            del self._pending[: len(batch)]
            if self._pending:  # stopped part way: the rest stays, as spooled as it was
                self._spooled = max(0, self._spooled - len(batch))
                return False
            spooled, self._spooled = self._spooled, 0
        if spooled:
            self._spool.remove()
        if self._problem is not None:
            logger.info("store: writing again; {} queued record(s) written", len(batch))
            self._db_problem = self._spool_problem = self._problem = self._problem_since = None
            self._tell(None)
        return True

    def _write_one_by_one(self, writer: Store, batch: list[Entry]) -> list[Entry]:
        """Apply entries singly, dropping (and naming) those that can never be
        written; the entries written or dropped, stopping at a database fault."""
        done: list[Entry] = []
        for entry in batch:
            try:
                with writer.transaction() as db:
                    journal.apply(db, entry)
            except journal.EntryRefused as exc:
                logger.error("store: {} dropped: {}", journal.describe(entry), exc)
            except StoreUnavailable as exc:
                if not isinstance(exc.__cause__, _PERMANENT):
                    self._report(db=f"cannot write to the database: {exc.__cause__ or exc}")
                    break
                logger.error("store: {} dropped: {}", journal.describe(entry), exc.__cause__)
            done.append(entry)
        return done

    def _spool_pending(self, *, final: bool) -> None:
        """Put the entries the database has not taken into the spool (all again
        if the spool went away, with the directory say); ``final`` at shutdown."""
        if not final and not self._spool.path.parent.is_dir():
            return  # the directory is gone: kept in memory until it is back, or shutdown
        with self._cond:
            if self._spooled and not self._spool.exists():
                self._spooled = 0
            fresh = self._pending[self._spooled :]
        if fresh:
            try:
                self._spool.append(fresh, make_directory=final)
            except OSError as exc:
                self._report(spool=f"the spool {self._spool.path} cannot be written: {exc}")
                if final:
                    logger.error(
                        "store: {} record(s) could not be saved at shutdown and are lost",
                        len(fresh),
                    )
                return
            with self._cond:
                self._spooled += len(fresh)
            self._spool_problem = None
        if final and self._spooled:
            logger.warning(
                "store: {} record(s) kept in {} for the next start", self._spooled, self._spool.path
            )

    def _report(self, *, db: str | None = None, spool: str | None = None) -> None:
        """Note a problem; one log line when what is wrong changes, not one per attempt."""
        if db is not None:
            self._db_problem = db
        if spool is not None:
            self._spool_problem = spool
        problem = "; ".join(p for p in (self._db_problem, self._spool_problem) if p)
        if problem == self._problem:
            return
        if self._problem is None:
            self._problem_since = self._now()
        self._problem = problem
        logger.error("store: {}", problem)
        self._tell(problem)

    def _tell(self, problem: str | None) -> None:
        if self._on_problem is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(self._on_problem, problem)
