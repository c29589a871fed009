"""The writes a running daemon makes, as records that can wait and be replayed.

A call's record is written as a series of small entries (opened, a state
reached, fields set, closed; a bill remembered; a payment attempt). The
daemon does not write them to SQLite from the event loop: it builds an entry
here, with its id and timestamp decided at once, and hands it to the store's
writer (:mod:`daemon1521.billing.async_store`), which applies entries in
batches and, while the database cannot take them, keeps them in the spool
(:mod:`daemon1521.billing.spool`).

Applying an entry twice changes nothing more than applying it once (a spool
replayed after a crash may hold entries already written): a call is opened
with its id, a state carries its position in the call's list, the first
close wins, payments carry their id, a card is forgotten only if it was
remembered before the caller asked. Entries hold what the database holds,
in the same form: card numbers only masked, never a PIN.
"""

from __future__ import annotations

from typing import Any

import msgspec
import sqlite_utils

from daemon1521.billing.store import CALL_FIELDS, _require_masked


class OpenCall(msgspec.Struct, tag="open_call", frozen=True):
    call_id: int
    line: str
    caller: str | None
    at: str


class AddState(msgspec.Struct, tag="add_state", frozen=True):
    call_id: int
    state: str
    index: int | None
    """How many states the call had before this one (None: not known, append)."""


class UpdateCall(msgspec.Struct, tag="update_call", frozen=True):
    call_id: int
    fields: dict[str, str | int | None]


class CloseCall(msgspec.Struct, tag="close_call", frozen=True):
    call_id: int
    outcome: str
    reason: str | None
    at: str


class RememberBill(msgspec.Struct, tag="remember_bill", frozen=True):
    caller: str
    bill_id: str
    at: str


class RememberCard(msgspec.Struct, tag="remember_card", frozen=True):
    caller: str
    ciphertext: bytes
    masked: str
    at: str


class ForgetCard(msgspec.Struct, tag="forget_card", frozen=True):
    caller: str
    at: str
    """When the caller asked: a card remembered after that (a replay) is kept."""


class RecordPayment(msgspec.Struct, tag="record_payment", frozen=True):
    id: int
    call_id: int | None
    bill_id: str
    payment_id: str | None
    amount: int
    card_masked: str | None
    result: str
    tracking: str | None
    started_at: str
    ended_at: str


Entry = (
    OpenCall
    | AddState
    | UpdateCall
    | CloseCall
    | RememberBill
    | RememberCard
    | ForgetCard
    | RecordPayment
)


class EntryRefused(Exception):
    """An entry that can never be applied (a spool edited by hand, say)."""


def apply(db: sqlite_utils.Database, entry: Entry) -> None:
    """Apply one entry inside the caller's transaction; idempotent."""
    match entry:
        case OpenCall():
            db.execute(
                "INSERT INTO calls (id, line, caller_number, started_at, states)"
                " VALUES (?, ?, ?, ?, '[]') ON CONFLICT(id) DO NOTHING",
                (entry.call_id, entry.line, entry.caller, entry.at),
            )
        case AddState():
            if entry.index is None:
                where, params = "", ()
            else:
                where, params = " AND json_array_length(states) = ?", (entry.index,)
            db.execute(
                "UPDATE calls SET states = json_insert(states, '$[#]', ?), last_state = ?"
                f" WHERE id = ?{where}",
                (entry.state, entry.state, entry.call_id, *params),
            )
        case UpdateCall():
            unknown = set(entry.fields) - CALL_FIELDS
            if unknown or not entry.fields:
                raise EntryRefused(f"call fields {sorted(unknown)} do not exist")
            sets = ", ".join(f"{name} = ?" for name in entry.fields)
            db.execute(
                f"UPDATE calls SET {sets} WHERE id = ?", (*entry.fields.values(), entry.call_id)
            )
        case CloseCall():
            db.execute(
                "UPDATE calls SET ended_at = ?, outcome = ?, reason = ? "
                "WHERE id = ? AND outcome IS NULL",
                (entry.at, entry.outcome, entry.reason, entry.call_id),
            )
        case RememberBill():
            db.execute(
                "INSERT INTO remembered_bills (caller_number, bill_id, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(caller_number) DO UPDATE SET bill_id = excluded.bill_id,"
                " updated_at = excluded.updated_at",
                (entry.caller, entry.bill_id, entry.at),
            )
        case RememberCard():
            _require_masked(entry.masked)
            db.execute(
                "INSERT INTO remembered_cards (caller_number, card_ciphertext, card_masked,"
                " updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(caller_number) DO UPDATE SET"
                " card_ciphertext = excluded.card_ciphertext,"
                " card_masked = excluded.card_masked, updated_at = excluded.updated_at",
                (entry.caller, entry.ciphertext, entry.masked, entry.at),
            )
        case ForgetCard():
            db.execute(
                "DELETE FROM remembered_cards WHERE caller_number = ? AND updated_at <= ?",
                (entry.caller, entry.at),
            )
        case RecordPayment():
            if entry.card_masked is not None:
                _require_masked(entry.card_masked)
            # a call missing from this database (it was replaced) leaves the payment unlinked
            db.execute(
                "INSERT INTO payments (id, call_id, bill_id, payment_id, amount, card_masked,"
                " result, tracking, started_at, ended_at)"
                " VALUES (?, (SELECT id FROM calls WHERE id = ?), ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO NOTHING",
                (
                    entry.id,
                    entry.call_id,
                    entry.bill_id,
                    entry.payment_id,
                    entry.amount,
                    entry.card_masked,
                    entry.result,
                    entry.tracking,
                    entry.started_at,
                    entry.ended_at,
                ),
            )
        case _:
            raise EntryRefused(f"unknown entry {type(entry).__name__}")


def describe(entry: Entry) -> str:
    """What an entry is about, for a log line: no caller number, bill ID or card."""
    call_id: Any = getattr(entry, "call_id", None)
    kind = type(entry).__name__
    return f"{kind} (call {call_id})" if call_id is not None else kind
